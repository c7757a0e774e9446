"""Where the answer file comes from, in this order:

1. ``--answers PATH`` on the command line;
2. the kernel argument ``phyllome.answers=`` (from ``/proc/cmdline``, split as the kernel splits it):
   ``file:///path``, ``/path``, ``hd:LABEL=NAME:/path`` (that filesystem is mounted read-only, the file read, the
   filesystem unmounted), ``http://...`` or ``https://...``;
3. a filesystem labelled ``PHYLLOME-ANS`` holding ``/answers.toml``.

What is found stays in memory (:class:`Found`): no run writes a working copy to a fixed path that another run
could read, and no copy with secrets lands under /run or /tmp. Problems name the user's own file (or the kernel
argument). Every read is bounded: local files are read only when regular and at most :data:`MAX_BYTES`; HTTP has
a deadline for the whole transfer (not just per read: a server that trickles a byte every few seconds is cut
off), a size cap, and a body shorter than its Content-Length is an error. Credentials in a URL
(``https://user:secret@host/...``) are sent as HTTP basic authentication and masked in every message and log line.
No source at all means an interactive install; a source that is named but unusable is an error.
"""

from __future__ import annotations

import base64
import http.client
import logging
import os
import ssl
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from .core import cmdline as kernel_cmdline
from .core.errors import UserError
from .core.files import BoundedReadError, read_bounded, read_text_bounded
from .core.runner import Runner
from .core.secrets import REDACTOR

log = logging.getLogger("phyllome.discover")

CMDLINE = Path("/proc/cmdline")
LABEL = "PHYLLOME-ANS"
KARG = "phyllome.answers"
MAX_BYTES = 1 << 20
HTTP_TIMEOUT = 15.0
"""Seconds for the whole HTTP transfer, redirects included."""
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Found:
    """An answer file: where it came from (for the log and the summary), its bytes, and how errors name it."""

    source: str
    data: bytes = field(repr=False)
    name: str
    """The user's own path for a local file; the (redacted) kernel argument otherwise."""


def kernel_argument(cmdline: str, name: str = KARG) -> str | None:
    """The value of ``name=`` on a kernel command line (the last one wins, as in the kernel)."""
    return kernel_cmdline.argument(cmdline, name)


def redact_url(url: str) -> str:
    """The URL with the password of its user information masked (``user:***@host``), for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    if parts.password:
        REDACTOR.add(parts.password)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.password is not None else f"{parts.username}@"
    return urllib.parse.urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _read_local(path: Path, source: str) -> bytes:
    try:
        return read_bounded(path, MAX_BYTES)
    except BoundedReadError as exc:
        raise UserError(f"{source}: {path} {exc.reason}; that is not an answer file"
                        if "larger" in exc.reason or "regular" in exc.reason
                        else f"{source}: {path} {exc.reason}") from None


def fetch(url: str, timeout: float = HTTP_TIMEOUT, *, max_bytes: int = MAX_BYTES,
          headers: dict[str, str] | None = None) -> bytes:
    """GET ``url`` (http or https) within ``timeout`` seconds in all, at most ``max_bytes``, complete or an error."""
    shown = redact_url(url)
    source = f"{KARG}={shown}"
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"{source}: not an http:// or https:// URL")
        request_headers = {"User-Agent": "phyllome-install", "Accept": "*/*", **(headers or {})}
        if parts.username is not None:
            pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            token = base64.b64encode(pair.encode()).decode()
            REDACTOR.add(token)
            request_headers["Authorization"] = f"Basic {token}"
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UserError(f"{source}: no complete answer within {timeout:g} s")
        connection = (http.client.HTTPSConnection(host, timeout=remaining, context=ssl.create_default_context())
                      if parts.scheme == "https" else http.client.HTTPConnection(host, timeout=remaining))
        try:
            connection.request("GET", target, headers=request_headers)
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                location = urllib.parse.urljoin(url, response.getheader("Location", ""))
                if parts.scheme == "https" and not location.startswith("https://"):
                    raise UserError(f"{source}: the server redirects from https to {redact_url(location)}; refused")
                url = location
                continue
            if response.status != 200:
                raise UserError(f"{source}: the server answered HTTP {response.status} {response.reason}")
            return _read_body(response, connection, deadline, max_bytes, source, timeout)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            if isinstance(exc, TimeoutError) or time.monotonic() >= deadline:
                raise UserError(f"{source}: no complete answer within {timeout:g} s") from None
            reason = REDACTOR.redact(str(getattr(exc, "strerror", None) or exc or type(exc).__name__))
            raise UserError(f"{source}: cannot fetch the answer file: {reason}",
                            hint="check the network and the URL; the install has not started") from None
        finally:
            connection.close()
    raise UserError(f"{source}: more than {MAX_REDIRECTS} redirects")


def _read_body(response: http.client.HTTPResponse, connection: http.client.HTTPConnection, deadline: float,
               max_bytes: int, source: str, timeout: float) -> bytes:
    length = response.getheader("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    if expected is not None and expected > max_bytes:
        raise UserError(f"{source}: larger than {max_bytes} bytes; that is not an answer file")
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UserError(f"{source}: no complete answer within {timeout:g} s ({size} bytes arrived)")
        if connection.sock is not None:
            connection.sock.settimeout(remaining)
        chunk = response.read1(64 * 1024)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise UserError(f"{source}: larger than {max_bytes} bytes; that is not an answer file")
    if expected is not None and size != expected:
        raise UserError(f"{source}: the transfer was cut short: {size} of {expected} bytes arrived")
    return b"".join(chunks)


class Discovery:
    """Finds the answer file. Every side effect is injected: the runner, the cmdline file, the destination."""

    def __init__(self, runner: Runner, *, cmdline: Path = CMDLINE, http_timeout: float = HTTP_TIMEOUT,
                 label: str = LABEL) -> None:
        self.runner = runner
        self.cmdline = cmdline
        self.http_timeout = http_timeout
        self.label = label

    def find(self, cli_path: Path | None = None) -> Found | None:
        if cli_path is not None:
            return Found(f"--answers {cli_path}", _read_local(cli_path, "--answers"), str(cli_path))
        value = kernel_argument(self.kernel_cmdline())
        if value is not None:
            return self._from_kernel_argument(value)
        device = self._device_with_label(self.label)
        if device is not None:
            source = f"partition labelled {self.label} ({device})"
            return self._found(source, self._read_from_device(device, "/answers.toml", source))
        log.info("no answer file: --answers not given, no %s= kernel argument, no %s partition", KARG, self.label)
        return None

    def kernel_cmdline(self) -> str:
        """The kernel command line (bounded; empty when it cannot be read)."""
        try:
            return read_text_bounded(self.cmdline, 64 * 1024, errors="replace")
        except OSError:
            return ""

    def _found(self, source: str, data: bytes, name: str | None = None) -> Found:
        log.info("answer file from %s (%d bytes)", source, len(data))
        return Found(source, data, name or source)

    def _from_kernel_argument(self, value: str) -> Found:
        source = f"{KARG}={redact_url(value) if value.startswith(('http://', 'https://')) else value}"
        if value.startswith(("http://", "https://")):
            return self._found(source, fetch(value, self.http_timeout))
        if value.startswith("file://"):
            path = value[len("file://"):]
            return self._found(source, _read_local(Path(path), source), path)
        if value.startswith("/"):
            return self._found(source, _read_local(Path(value), source), value)
        if value.startswith("hd:"):
            spec, sep, inner = value[3:].partition(":")
            if not spec.startswith("LABEL=") or not sep or not inner.startswith("/"):
                raise UserError(f"{source}: expected hd:LABEL=NAME:/path/to/answers.toml")
            label = spec[len("LABEL="):]
            device = self._device_with_label(label)
            if device is None:
                raise UserError(f"{source}: no filesystem labelled {label!r} was found")
            return self._found(source, self._read_from_device(device, inner, source))
        raise UserError(f"{source}: unsupported form",
                        hint="use file:///path, /path, hd:LABEL=NAME:/path, http://... or https://...")

    def _device_with_label(self, label: str) -> str | None:
        result = self.runner.run(["blkid", "-L", label], check=False)
        device = result.stdout.strip().splitlines()[0] if result.ok and result.stdout.strip() else None
        return device

    def _read_from_device(self, device: str, inner: str, source: str) -> bytes:
        mountpoint = tempfile.mkdtemp(prefix="phyllome-answers-")
        try:
            self.runner.run(["mount", "-o", "ro,nosuid,nodev,noexec", device, mountpoint])
            try:
                return _read_local(Path(mountpoint) / inner.lstrip("/"), source)
            finally:
                self.runner.run(["umount", mountpoint])
        finally:
            if not os.path.ismount(mountpoint):
                os.rmdir(mountpoint)
