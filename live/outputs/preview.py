"""``--preview-port N``: the shown picture as MJPEG over HTTP, for a headless box or a check from the booth.

Open ``http://HOST:N/`` in a browser (a page with the stream), or read
``/stream.mjpg`` (``multipart/x-mixed-replace``, one JPEG per part; VLC, ffplay
and OBS's media source read it) or ``/frame.jpg`` (the newest frame).

Cheap by design: at most :data:`MAX_FPS` frames a second, scaled to at most
``max_side`` pixels, encoded with Pillow's libjpeg only while a client is
watching.  It listens on 127.0.0.1 unless told otherwise; ``allow`` restricts
clients to IP addresses or CIDR networks, like OSC's allow-list.
"""

from __future__ import annotations

import http.server
import io
import ipaddress
import logging
import threading
from typing import Any, Iterable

import numpy as np

from core.errors import ConfigError
from live.outputs.base import Output
from live.stage import LatestSlot

log = logging.getLogger(__name__)

MAX_FPS = 10.0  # a preview, not a feed: 10 fps keeps it a few % of one core
BOUNDARY = "m2vframe"
_PAGE = (b"<!doctype html><title>m2v preview</title><body style='margin:0;background:#000'>"
         b"<img src='/stream.mjpg' style='width:100vw;height:100vh;object-fit:contain'></body>")


def parse_allow(items: Iterable[str] | str | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """IP addresses or CIDR networks (a list or a comma-separated string); empty -> None (anyone allowed)."""
    if isinstance(items, str):
        items = items.split(",")
    nets = []
    for item in (s.strip() for s in items or ()):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"preview allow-list entry {item!r} is not an IP address or CIDR network; "
                              "write e.g. --preview-allow 192.168.1.0/24,10.0.0.5") from None
    return nets or None


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, so neither side exceeds ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode_jpeg(frame: np.ndarray, *, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    preview: "MjpegPreview"

    def verify_request(self, request: Any, client_address: Any) -> bool:
        ok = self.preview.allows(client_address[0])
        if not ok:
            self.preview.counters["refused"] += 1
        return ok


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        log.debug("preview %s: " + format, self.client_address[0], *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._reply(200, "text/html", _PAGE)
        elif path == "/frame.jpg":
            preview = self.server.preview
            with preview.watching():  # a watcher: the next shown frame is encoded fresh
                jpeg = preview.wait_jpeg(preview.jpegs.get()[1], timeout_s=2.0)[0]
            if jpeg is None:
                self._reply(503, "text/plain", b"no frame yet\n")
            else:
                self._reply(200, "image/jpeg", jpeg)
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self._reply(404, "text/plain", b"not found: try / or /stream.mjpg or /frame.jpg\n")

    def _reply(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        preview = self.server.preview
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with preview.watching():
            version = 0
            try:
                while not preview.stopping.is_set():
                    jpeg, newer = preview.wait_jpeg(version, timeout_s=0.5)
                    if newer == version or jpeg is None:
                        continue
                    version = newer
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                     f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass  # the viewer went away


class MjpegPreview(Output):
    """The MJPEG preview server: an output whose receivers are HTTP clients.

    Args:
        port: TCP port (0 picks a free one; see :attr:`port` once started).
        host: address to listen on (127.0.0.1 = this machine only; 0.0.0.0 = the network).
        allow: client IP addresses or CIDR networks accepted (None: any).
        fps: frames a second, at most :data:`MAX_FPS`.
        max_side: the JPEG's longer side in pixels, at most (frames are scaled down, never up).
        quality: JPEG quality 10..95.
    """

    kind = "preview"

    def __init__(self, *, port: int, host: str = "127.0.0.1", allow: Iterable[str] | str | None = None,
                 fps: float = MAX_FPS, max_side: int = 512, quality: int = 70, **kwargs: Any) -> None:
        super().__init__(f"{host}:{port}", fps=min(float(fps), MAX_FPS), **kwargs)
        self.host, self.port = host, int(port)
        self.allow = parse_allow(allow)
        self.max_side = int(max_side)
        self.quality = int(quality)
        self.jpegs: LatestSlot[bytes] = LatestSlot()
        self._clients = 0
        self._clients_lock = threading.Lock()
        self._server: _Server | None = None
        self._server_thread: threading.Thread | None = None
        self.counters["refused"] = 0

    # --- the HTTP side -----------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def clients(self) -> int:
        return self._clients

    def allows(self, address: str) -> bool:
        if self.allow is None:
            return True
        try:
            ip = ipaddress.ip_address(address.removeprefix("::ffff:"))
        except ValueError:
            return False
        return any(ip in net for net in self.allow)

    def watching(self):
        """Context manager counting a streaming client (frames are encoded only while one watches)."""
        preview = self

        class _Watch:
            def __enter__(self) -> None:
                with preview._clients_lock:
                    preview._clients += 1

            def __exit__(self, *exc: Any) -> None:
                with preview._clients_lock:
                    preview._clients -= 1

        return _Watch()

    def wait_jpeg(self, version: int, *, timeout_s: float) -> tuple[bytes | None, int]:
        return self.jpegs.wait_newer(version, timeout_s)

    def start(self) -> None:
        """Bind and serve at once (clients may connect before the first frame); a bind error is reported."""
        try:
            server = _Server((self.host, self.port), _Handler)
        except OSError as exc:
            self.unavailable = str(exc)
            self._note_error(exc, f"cannot listen on {self.host}:{self.port}")
            return
        server.preview = self
        self._server = server
        self.port = server.server_address[1]
        self._server_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                               name="m2v-preview-http", daemon=True)
        self._server_thread.start()
        log.info("preview at %s", self.url)
        super().start()

    def on_stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- the output side (frames in, JPEGs out) ----------------------------------------

    def _ensure_open(self, frame: np.ndarray) -> bool:
        return True  # the server is already up; the size follows the frame

    def send(self, frame: np.ndarray) -> bool:
        """Encode ``frame`` for the clients; False when nobody watches (the last JPEG stays for /frame.jpg)."""
        if self._clients == 0 and self.jpegs.get()[1] > 0:
            return False
        h, w = frame.shape[:2]
        tw, th = fit_within(w, h, self.max_side)
        if (tw, th) != (w, h):
            from PIL import Image

            frame = np.asarray(Image.fromarray(frame).resize((tw, th), Image.BILINEAR))
        self.jpegs.put(encode_jpeg(frame, quality=self.quality))
        return True

    def _send_one(self, frame: np.ndarray) -> bool:
        try:
            encoded = self.send(frame)
        except Exception as exc:  # noqa: BLE001 - a bad frame must not end the preview
            self._note_error(exc, "encode failed")
            return False
        if encoded:
            self.counters["sent"] += 1
            self.sent_event.set()
        return True

    def stats(self) -> dict:
        out = super().stats()
        out.update(url=self.url, clients=self._clients, refused=int(self.counters["refused"]))
        return out
