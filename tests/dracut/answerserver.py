"""A tiny answer-file server for the boot tests: 127.0.0.1 only, a bounded request loop, stops by itself."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass, field

IDENTITY = ("uuid", "mac", "serial", "hostname")


@dataclass
class Seen:
    path: str
    """As asked for, without the machine's identity query (docs/fleet.md), which is in ``identity``."""
    headers: dict[str, str]
    identity: dict[str, str] = field(default_factory=dict)


def split_identity(path: str) -> tuple[str, dict[str, str]]:
    """``path`` without the identity parameters the module appends, and those parameters."""
    base, _, query = path.partition("?")
    pairs = [p.partition("=") for p in query.split("&")] if query else []
    identity = {k: v for k, _, v in pairs if k in IDENTITY}
    rest = "&".join(f"{k}={v}" if eq else k for k, eq, v in pairs if k not in IDENTITY)
    return base + (f"?{rest}" if rest else ""), identity


@dataclass(frozen=True)
class CutShort:
    """A response whose Content-Length promises more than is sent before the connection closes."""

    body: bytes
    promised: int


@dataclass
class AnswerServer:
    files: dict[str, bytes | CutShort]
    lifetime: float = 600.0
    seen: list[Seen] = field(default_factory=list)

    def __enter__(self) -> AnswerServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path, identity = split_identity(self.path)
                server.seen.append(Seen(path, dict(self.headers.items()), identity))
                body = server.files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                cut = isinstance(body, CutShort)
                self.send_response(200)
                self.send_header("Content-Type", "application/toml")
                self.send_header("Content-Length", str(body.promised if cut else len(body)))
                if cut:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body.body if cut else body)
                if cut:
                    self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self._httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)  # loopback only: QEMU's 10.0.2.2
        self._httpd.timeout = 0.2
        self.port = self._httpd.server_address[1]
        self._stop = threading.Event()
        deadline = time.monotonic() + self.lifetime

        def loop() -> None:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self._httpd.handle_request()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def url(self, path: str) -> str:
        """The URL as the guest sees it: QEMU's user network forwards 10.0.2.2 to this machine's loopback."""
        return f"http://10.0.2.2:{self.port}{path}"

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._httpd.server_close()
