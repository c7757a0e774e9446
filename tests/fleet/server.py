"""A stub fleet server on 127.0.0.1 (the guests reach it as 10.0.2.2), in the two roles docs/fleet.md describes:

* plain HTTP: the network boot's files (`/pxe/...`: the live medium's vmlinuz, initrd.img, squashfs.img,
  boot.ipxe), the payload's ostree repository (`/repo/...`), and `POST /events` (kept in arrival order);
* HTTPS with a self-signed key (openssl; the guests pin it with phyllome.answers.pubkey=): `GET /generic`, which
  answers by the query's selectors as matchbox's /generic does (here the SMBIOS serial; 404 when no profile
  matches), and keeps every query it was asked.

Files are served from fixed roots only (no `..`), with sendfile; the servers stop with the test.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import ssl
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FleetServer:
    roots: dict[str, Path]
    """URL prefix ("pxe", "repo") -> the directory it serves."""
    profiles: dict[str, bytes]
    """SMBIOS serial -> the answer file for that machine."""
    workdir: Path
    events: list[dict] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)

    def __enter__(self) -> FleetServer:
        fleet = self

        class Files(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                parts = urllib.parse.urlsplit(self.path).path.lstrip("/").split("/", 1)
                root = fleet.roots.get(parts[0])
                inner = parts[1] if len(parts) > 1 else ""
                if root is None or ".." in inner.split("/"):
                    return self._status(404)
                path = root / inner
                if not path.is_file():
                    return self._status(404)
                size = path.stat().st_size
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                with open(path, "rb") as handle:
                    offset = 0
                    while offset < size:
                        offset += os.sendfile(self.connection.fileno(), handle.fileno(), offset, size - offset)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1 << 20))
                if self.path == "/events":
                    fleet.events.append(json.loads(body))
                self._status(204)

            def _status(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        class Answers(Files):
            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                fleet.queries.append(query)
                body = fleet.profiles.get(query.get("serial", "")) if url.path == "/generic" else None
                if body is None:
                    return self._status(404)
                self.send_response(200)
                self.send_header("Content-Type", "application/toml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        key, cert = self.workdir / "key.pem", self.workdir / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=fleet.test"],
                       check=True, capture_output=True)
        pem = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], check=True,
                             capture_output=True).stdout
        spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem, check=True,
                              capture_output=True).stdout
        self.pin = "sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode()
        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
        self._https = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._https.socket = context.wrap_socket(self._https.socket, server_side=True)
        self._http.daemon_threads = self._https.daemon_threads = True
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self._http, self._https)]
        for thread in self._threads:
            thread.start()
        self.port, self.tls_port = self._http.server_address[1], self._https.server_address[1]
        return self

    def url(self, path: str) -> str:
        """A plain HTTP URL as the guests see it."""
        return f"http://10.0.2.2:{self.port}{path}"

    def tls_url(self, path: str) -> str:
        return f"https://10.0.2.2:{self.tls_port}{path}"

    def events_of(self, serial: str) -> list[dict]:
        return [e for e in list(self.events) if e.get("machine", {}).get("serial") == serial]

    def __exit__(self, *exc) -> None:
        for server in (self._http, self._https):
            server.shutdown()
            server.server_close()
