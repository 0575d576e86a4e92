"""``m2v weights``: list, fetch and locate model files."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.models.weights import FileStatus

HELP = "list, download, show and locate model weights (list | download [SET] | show SET | path)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="each file of each model set: present / missing / partial / corrupt, with its "
                        "path; exits 1 if a file is partial or corrupt, or a SET named here is incomplete")
    ls.add_argument("sets", nargs="*", help="model sets to show (default: all registered sets)")
    ls.add_argument("--verify", action="store_true", help="also check SHA-256 checksums where known (reads every file)")
    dl = sub.add_parser("download", help="download a model set into the cache (resumes, verifies, atomic)")
    dl.add_argument("set", nargs="?", default="default", help="model set (default: default)")
    dl.add_argument("--force", action="store_true", help="download again even if present")
    dl.add_argument("--offline", action="store_true", help="refuse to use the network (for scripts; fails at once)")
    sh = sub.add_parser("show", help="a set's models and files; for toy also its vocabulary and sound pairing")
    sh.add_argument("set", help="model set (e.g. toy)")
    sub.add_parser("path", help="print the cache folder ($M2V_HOME/models)")


def _list_problems(name: str, statuses: list[FileStatus], *, named: bool) -> list[str]:
    """What ``weights list`` must report for one set: partial or corrupt files always; missing files
    only when the set was named on the command line (sets share files, and a set never downloaded
    is normal when listing them all)."""
    bad = [st for st in statuses if st.state in ("partial", "corrupt") or (named and st.state == "missing")]
    if not bad:
        return []
    lines = [f"{name}: {st.state}: {st.path}" for st in bad]
    if any(st.file.url is None for st in bad):
        return lines + [f"{name}: these files have no download URL; restore them from where the set came from "
                        "(`toy` ships with m2v; delete the `tiny` folder and it is written again)"]
    fix = f"fix with `m2v weights download {name}` (it resumes partial files and replaces files of the wrong size)"
    if any(st.detail.startswith("sha256") for st in bad):
        fix += "; delete a file with a wrong sha256 first (download keeps a file whose size is right)"
    return lines + [f"{name}: {fix}"]


def run(args: argparse.Namespace) -> int:
    from core.errors import WeightsMissingError
    from core.models import list_sets, resolve_spec
    from core.models.registry import REGISTRY
    from core.models.weights import download_set, file_status, missing_message
    from core.paths import models_dir

    if args.action == "path":
        print(models_dir())
        return 0
    if args.action == "show":
        spec = resolve_spec(args.set)
        print(f"{spec.name}: {spec.description}")
        print(f"  CLIP space {spec.clip_space}; audio encoder: {spec.audio_space or 'none'}; "
              f"default size {spec.default_size}px")
        for wf in spec.files():
            st = file_status(spec, wf)
            print(f"  {st.state:8s} {st.path}")
        if spec.name == "toy":
            from core.toyworld import describe

            print("\nThe toy world (prompts the toy models understand):")
            print(describe())
        return 0
    if args.action == "list":
        names = args.sets or list(REGISTRY)
        problems = []
        for name in names:
            spec = resolve_spec(name)
            print(f"{spec.name}: {spec.description}")
            statuses = [file_status(spec, wf, verify=args.verify) for wf in spec.files()]
            for st in statuses:
                detail = f" ({st.detail})" if st.detail else ""
                print(f"  {st.state:8s} {st.path}{detail}")
            problems += _list_problems(spec.name, statuses, named=bool(args.sets))
        print(f"\nsets: {', '.join(list_sets())}. Fetch one with `m2v weights download SET`.")
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    # download
    spec = resolve_spec(args.set)
    if args.offline:
        statuses = [file_status(spec, wf) for wf in spec.files()]
        if all(st.state == "present" for st in statuses) and not args.force:
            print(f"{spec.name}: all files present")
            return 0
        raise WeightsMissingError(missing_message(spec, statuses, reason="--offline given"))
    statuses = download_set(spec, force=args.force)
    for st in statuses:
        print(f"  {st.state:8s} {st.path}")
    return 0
