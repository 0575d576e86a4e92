"""The weight cache: where each file of a model set lives, its state, and fetching it.

Only ``m2v weights download`` (or first use, when the network is allowed) goes
online; everything else reads local files.  Downloads resume partial files
(HTTP Range), verify size and SHA-256 where known, and become visible under
their final name only when complete (write ``.part``, then rename).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import WeightsMissingError
from core.models.registry import ModelSetSpec, WeightFile
from core.paths import models_dir

log = logging.getLogger(__name__)

State = Literal["present", "missing", "corrupt", "partial"]
_CHUNK = 1 << 20  # 1 MiB reads: progress updates often enough, few syscalls
CONNECT_TIMEOUT_S = 10.0  # fail fast without network rather than retry for minutes


def set_root(spec: ModelSetSpec) -> Path:
    return Path(spec.files_root) if spec.files_root else models_dir()


def file_path(spec: ModelSetSpec, wf: WeightFile) -> Path:
    return set_root(spec) / wf.path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileStatus:
    file: WeightFile
    path: Path
    state: State
    detail: str = ""


def file_status(spec: ModelSetSpec, wf: WeightFile, *, verify: bool = False) -> FileStatus:
    """present / missing / partial / corrupt.  ``verify`` also checks the SHA-256 (slow for GBs)."""
    path = file_path(spec, wf)
    if not path.exists():
        part = path.with_name(path.name + ".part")
        if part.exists():
            return FileStatus(wf, path, "partial", f"{part.stat().st_size} bytes downloaded")
        return FileStatus(wf, path, "missing")
    size = path.stat().st_size
    if wf.size_bytes is not None and size != wf.size_bytes:
        return FileStatus(wf, path, "corrupt", f"size {size} bytes, expected {wf.size_bytes}")
    if size == 0:
        return FileStatus(wf, path, "corrupt", "empty file")
    if verify and wf.sha256:
        digest = sha256_of(path)
        if digest != wf.sha256:
            return FileStatus(wf, path, "corrupt", f"sha256 {digest[:12]}…, expected {wf.sha256[:12]}…")
    return FileStatus(wf, path, "present", f"{size} bytes")


def missing_message(spec: ModelSetSpec, statuses: list[FileStatus], *, reason: str = "") -> str:
    lines = [f"model set '{spec.name}' is not complete{': ' + reason if reason else ''}."]
    for st in statuses:
        if st.state != "present":
            lines.append(f"  {st.state}: {st.path}" + (f"  <- {st.file.url}" if st.file.url else ""))
    lines.append(
        f"Run `m2v weights download {spec.name}` where the network allows, or download each URL above "
        "to the path shown (M2V_HOME sets the cache folder)."
    )
    return "\n".join(lines)


def _download(url: str, dest: Path, *, expected_size: int | None, sha256: str | None, progress: bool) -> None:
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "m2v"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    resp = urllib.request.urlopen(req, timeout=CONNECT_TIMEOUT_S)  # noqa: S310 - URLs from the registry
    with resp:
        if have and resp.status != 206:  # server ignored the range: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = (int(length) + have) if length is not None else expected_size
        mode = "ab" if have else "wb"
        with open(part, mode) as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=dest.name, disable=not progress,
        ) as bar:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        raise OSError(f"{dest.name}: got {size} bytes, expected {expected_size}; run the download again to resume")
    if sha256 is not None:
        digest = sha256_of(part)
        if digest != sha256:
            part.unlink()
            raise OSError(f"{dest.name}: checksum mismatch ({digest} != {sha256}); the partial file was removed")
    os.replace(part, dest)  # atomic: the final name appears only when complete


def _network_reachable(url: str) -> str | None:
    """None if the URL's host resolves, else why not (fast: DNS only)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
        return None
    except OSError as exc:
        return f"cannot reach {host} ({exc})"


def download_set(spec: ModelSetSpec, *, progress: bool = True, force: bool = False) -> list[FileStatus]:
    """Fetch every file of ``spec`` that is not present.  Raises WeightsMissingError on failure."""
    statuses = [file_status(spec, wf) for wf in spec.files()]
    todo = [st for st in statuses if st.state != "present" or force]
    for st in todo:
        if st.file.url is None:
            raise WeightsMissingError(missing_message(spec, statuses, reason=f"{st.path} has no download URL"))
        why = _network_reachable(st.file.url)
        if why:
            raise WeightsMissingError(missing_message(spec, statuses, reason=why))
        if st.state == "corrupt" or force:
            st.path.unlink(missing_ok=True)
        log.info("downloading %s -> %s", st.file.url, st.path)
        try:
            _download(st.file.url, st.path, expected_size=st.file.size_bytes, sha256=st.file.sha256, progress=progress)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            statuses = [file_status(spec, wf) for wf in spec.files()]
            raise WeightsMissingError(missing_message(spec, statuses, reason=f"download failed: {exc}")) from exc
    return [file_status(spec, wf) for wf in spec.files()]


def ensure_files(spec: ModelSetSpec, *, offline: bool, progress: bool = True) -> None:
    """Make sure every file of ``spec`` is present, downloading when allowed."""
    statuses = [file_status(spec, wf) for wf in spec.files()]
    if all(st.state == "present" for st in statuses):
        return
    if offline:
        raise WeightsMissingError(missing_message(spec, statuses, reason="offline mode (--offline / M2V_OFFLINE=1)"))
    download_set(spec, progress=progress)
