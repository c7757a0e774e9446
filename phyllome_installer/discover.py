"""Where the answer file comes from, in this order:

1. ``--answers PATH`` on the command line;
2. the kernel argument ``phyllome.answers=`` (from ``/proc/cmdline``, split as the kernel splits it, up to
   ``--``): ``file:///path``, ``file:/path``, ``/path``, ``hd:LABEL=NAME:/path`` or ``hd:UUID=UUID:/path`` (that
   filesystem is mounted read-only, the file read, the filesystem unmounted; a ``..`` or a link leading off it is
   refused), ``http://...`` or ``https://...``;
3. a filesystem labelled ``PHYLLOME-ANS`` holding ``/answers.toml`` (also when ``phyllome.answers=`` is empty).

The grammar (:func:`parse_spec`) is the initramfs module's (dracut/90phyllome), message for message.

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
import json
import logging
import os
import re
import ssl
import tempfile
import time
import urllib.parse
from collections.abc import Callable
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


# ---------------------------------------------------------------------------------------------- the one grammar
# The same grammar as dracut/90phyllome/phyllome-lib.sh (phyllome_parse), message for message; both pass the
# cases of tests/data/bootargs/cases.json.

PIN_KARG = "phyllome.answers.sha256"
INSECURE_KARG = "phyllome.answers.insecure"
PUBKEY_KARG = "phyllome.answers.pubkey"
FACTS_KARG = "phyllome.answers.facts"
EVENTS_KARG = "phyllome.events"
E_PUBKEY = "expected sha256//BASE64 (curl's --pinnedpubkey), several separated by ;"
_CONTROL = re.compile(r"[\x01-\x1f\x7f]")
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/?#@!$&()*+,;=%\[\]'-]*")
_HOSTPORT = re.compile(r"\[(?P<v6>[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)\](?::(?P<p6>[0-9]+))?"
                       r"|(?P<host>[A-Za-z0-9._-]+)(?::(?P<port>[0-9]+))?")
PUBKEY_PIN = re.compile(r"sha256//[A-Za-z0-9+/]{43}=")
_HD = re.compile(r"hd:(?P<where>.*?):(?P<path>/.+)", re.S)
E_HD = "expected hd:LABEL=NAME:/path or hd:UUID=UUID:/path"
E_URL = ("expected http(s)://[USER:PASSWORD@]HOST[:PORT]/PATH (percent-encode @, /, ?, # and spaces in a "
         "password)")


def clean(text: str) -> str:
    """``text`` for a console line or a status file: control characters and backslashes as ``?``."""
    return re.sub(r"[\x01-\x1f\x7f\\]", "?", text)


def shown(spec: str) -> str:
    """The answer source as it may be shown: a URL's user information and query masked, then :func:`clean`."""
    if not spec.startswith(("http://", "https://")):
        return clean(spec)
    scheme, _, rest = spec.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    cut = re.search(r"[?#]", rest)
    if cut:
        rest = rest[: cut.start()] + "?***"
    return clean(f"{scheme}://{rest}")


def url_ok(url: str) -> bool:
    """Whether ``url`` is ``http(s)://[USERINFO@]HOST[:PORT][/PATH...]`` in the one grammar."""
    if not _URL_CHARS.fullmatch(url):
        return False
    auth = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]
    userinfo, at, hostport = auth.rpartition("@")
    if at and "@" in userinfo:
        return False
    match = _HOSTPORT.fullmatch(hostport)
    if match is None:
        return False
    port = match.group("p6") or match.group("port")
    return port is None or (len(port) <= 5 and 1 <= int(port) <= 65535)


def boolean(name: str, cmdline: str) -> tuple[bool, str | None]:
    """A boolean kernel argument: ``(value, warning)``. ``name`` alone, ``=1``, ``yes``, ``y``, ``true``, ``on``
    are true; ``=0``, ``no``, ``n``, ``false``, ``off`` and no argument are false (any case, the last one wins).
    Anything else is never taken as true: it is false, with a warning to show."""
    present, form = False, None
    for word in kernel_cmdline.words(cmdline):
        key, value = kernel_cmdline.parse_word(word)
        if key == name:
            present, form = True, value
    if not present:
        return False, None
    if form is None:
        return True, None
    if form.lower() in ("1", "yes", "y", "true", "on"):
        return True, None
    if form.lower() in ("0", "no", "n", "false", "off"):
        return False, None
    return False, (f"{name}={clean(form)}: not a boolean (use 1, yes, true, on or 0, no, false, off); "
                   "taken as off")


@dataclass(frozen=True)
class Spec:
    """The ``phyllome.answers*`` kernel arguments, parsed: where the answer file is, or why it is refused."""

    kind: str
    """default, file, hd, url or error."""
    spec: str = field(default="", repr=False)
    shown: str = ""
    where: str = ""
    path: str = ""
    url: str = field(default="", repr=False)
    sha256: str = ""
    insecure: bool = False
    error: str = ""
    warning: str = ""
    pubkey: str = ""
    """``sha256//BASE64[;sha256//BASE64...]``: the TLS public keys the https:// endpoint may hold."""
    facts: bool = False
    """POST the machine's facts at once (the server may also ask for them with HTTP 428)."""
    events: str = field(default="", repr=False)
    """``phyllome.events=``: where the install's events go (an answer file's [report] url wins)."""

    @property
    def pubkeys(self) -> tuple[str, ...]:
        return tuple(self.pubkey.split(";")) if self.pubkey else ()

    @property
    def source(self) -> str:
        return f"{KARG}={self.shown}"


def parse_spec(cmdline: str, label: str = LABEL) -> Spec:
    """The kernel command line's answer source, in the grammar the initramfs module uses."""
    spec = kernel_argument(cmdline) or ""
    pin_raw = kernel_argument(cmdline, PIN_KARG) or ""
    pin = pin_raw.translate(str.maketrans("ABCDEF", "abcdef"))
    insecure, warning = boolean(INSECURE_KARG, cmdline)
    facts, facts_warning = boolean(FACTS_KARG, cmdline)
    pubkey = kernel_argument(cmdline, PUBKEY_KARG) or ""
    events = kernel_argument(cmdline, EVENTS_KARG) or ""
    warning = warning or facts_warning
    if events and not (events.startswith(("http://", "https://")) and url_ok(events)):
        warning = warning or f"{EVENTS_KARG}= (not shown: it may hold a token): {E_URL}; no events are sent"
        events = ""
    show = shown(spec)
    source = f"{KARG}={show}"
    errors: list[str] = []
    kind, where, path, url = "", "", "", ""
    if _CONTROL.search(spec):
        errors.append(f"{source}: control characters are refused")
    hd = _HD.fullmatch(spec)
    if not spec:
        kind, where, path = "default", f"LABEL={label}", "/answers.toml"
    elif spec.startswith(("http://", "https://")):
        kind, url = "url", spec
        if not url_ok(spec):
            errors.append(f"{source}: {E_URL}")
    elif spec.startswith("file:///"):
        kind, path = "file", spec[len("file://"):]
    elif spec.startswith("file://"):
        errors.append(f"{source}: a file: URL names no host here: use file:///path or file:/path")
    elif spec.startswith(("file:/", "/")):
        kind, path = "file", spec[len("file:"):] if spec.startswith("file:") else spec
    elif hd is not None:
        where, path = hd.group("where"), hd.group("path")
        if ((where.startswith("LABEL=") and len(where) > 6 and not re.search(r'["\\]', where))
                or re.fullmatch(r"UUID=[0-9A-Fa-f-]+", where)):
            kind = "hd"
        else:
            errors.append(f"{source}: {E_HD}")
    elif spec.startswith("hd:"):
        errors.append(f"{source}: {E_HD}")
    else:
        errors.append(f"{source}: unsupported form (use file:/path, hd:LABEL=NAME:/path, hd:UUID=UUID:/path, "
                      "http:// or https://)")
    if kind in ("file", "hd") and "/../" in path + "/":
        errors.append(f"{source}: a path with .. is refused (the answer file is read from the named filesystem "
                      "only)")
    if pin and not re.fullmatch(r"[0-9a-f]{64}", pin):
        errors.append(f"{PIN_KARG}={clean(pin_raw)}: expected 64 hexadecimal digits")
    if pubkey and not all(PUBKEY_PIN.fullmatch(key) for key in pubkey.split(";")):
        errors.append(f"{PUBKEY_KARG}={clean(pubkey)}: {E_PUBKEY}")
    elif pubkey and not spec.startswith("https://"):
        errors.append(f"{PUBKEY_KARG}= pins a TLS key: it needs an https:// {KARG}=")
    if kind == "url" and not pin and not insecure and spec.startswith("http://"):
        errors.append(f"{source}: refused: plain http:// needs {PIN_KARG}= (or {INSECURE_KARG}=1)")
    if errors:
        return Spec("error", spec, show, sha256=pin, insecure=insecure, error=errors[0], warning=warning or "",
                    events=events)
    return Spec(kind, spec, show, where, path, url, pin, insecure, "", warning or "", pubkey, facts, events)


def redact_url(url: str) -> str:
    """The URL as it may be shown (:func:`shown`); its password is also registered with the redactor."""
    parts = urllib.parse.urlsplit(url) if url_ok(url) else None
    if parts is not None and parts.password:
        REDACTOR.add(parts.password)
        REDACTOR.add(urllib.parse.unquote(parts.password))
    return shown(url)


def _read_local(path: Path, source: str) -> bytes:
    try:
        return read_bounded(path, MAX_BYTES)
    except BoundedReadError as exc:
        raise UserError(f"{source}: {path} {exc.reason}; that is not an answer file"
                        if "larger" in exc.reason or "regular" in exc.reason
                        else f"{source}: {path} {exc.reason}") from None


def fetch(url: str, timeout: float = HTTP_TIMEOUT, *, max_bytes: int = MAX_BYTES,
          headers: dict[str, str] | None = None, pubkeys: tuple[str, ...] = (),
          facts: Callable[[], bytes] | None = None, post: bool = False) -> bytes:
    """GET ``url`` (http or https) within ``timeout`` seconds in all, at most ``max_bytes``, complete or an error.
    ``pubkeys``: the server's TLS public key must be one of them (curl's --pinnedpubkey: it replaces the CA check).
    ``facts``: the JSON body POSTed when ``post`` or when the server answers the GET with HTTP 428."""
    source = f"{KARG}={redact_url(url)}"
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        if not url.startswith(("http://", "https://")) or not url_ok(url):
            raise UserError(f"{source}: {shown(url)} is not an http:// or https:// URL in the form "
                            "http(s)://[USER:PASSWORD@]HOST[:PORT]/PATH")
        parts = urllib.parse.urlsplit(url)
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
        connection = (http.client.HTTPSConnection(host, timeout=remaining, context=_tls(pubkeys))
                      if parts.scheme == "https" else http.client.HTTPConnection(host, timeout=remaining))
        try:
            if pubkeys:
                _check_pin(connection, pubkeys, source)
            body = facts() if post and facts is not None else None
            if body is not None:
                request_headers["Content-Type"] = "application/json"
            connection.request("POST" if body is not None else "GET", target, body=body, headers=request_headers)
            response = connection.getresponse()
            if response.status == 428 and facts is not None and not post:  # the server asks for the facts
                post = True
                continue
            if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                try:
                    location = urllib.parse.urljoin(url, response.getheader("Location", ""))
                except ValueError:  # a malformed Location (a broken IPv6 host): the URL check below names it
                    location = response.getheader("Location", "")
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


def _tls(pubkeys: tuple[str, ...]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if pubkeys:  # the pin names the key itself: a fleet's own server needs no public CA
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _check_pin(connection: http.client.HTTPSConnection, pubkeys: tuple[str, ...], source: str) -> None:
    """The TLS handshake, then the server's key against the pins, before a byte of the request is sent."""
    from .fleet import spki_sha256

    connection.connect()
    der = connection.sock.getpeercert(binary_form=True) if connection.sock is not None else None
    try:
        held = spki_sha256(der) if der else "no certificate"
    except (ValueError, IndexError):
        held = "an unreadable certificate"
    if held not in pubkeys:
        raise UserError(f"{source}: refused: the server's TLS key is {held}, {PUBKEY_KARG}= pins "
                        f"{';'.join(pubkeys)}")


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
                 label: str = LABEL, sys_root: Path = Path("/sys"), proc: Path = Path("/proc")) -> None:
        self.runner = runner
        self.cmdline = cmdline
        self.http_timeout = http_timeout
        self.label = label
        self.sys_root = sys_root
        self.proc = proc

    def find(self, cli_path: Path | None = None, spec: Spec | None = None) -> Found | None:
        """The answer file; ``spec``: the kernel arguments already parsed (:func:`parse_spec`)."""
        if cli_path is not None:
            return Found(f"--answers {cli_path}", _read_local(cli_path, "--answers"), str(cli_path))
        spec = spec or parse_spec(self.kernel_cmdline(), self.label)
        if spec.warning:
            log.warning("%s", spec.warning)
        if spec.kind != "default":
            return self._from_kernel_argument(spec)
        device = self._device_with_label(spec.where)
        if device is not None:
            source = f"partition labelled {self.label} ({device})"
            return self._found(source, self._read_from_device(device, spec.path, source))
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

    def _from_kernel_argument(self, spec: Spec) -> Found:
        source = spec.source
        if spec.kind == "error":
            raise UserError(spec.error, hint="use file:///path, /path, hd:LABEL=NAME:/path, hd:UUID=UUID:/path, "
                                             "http://... or https://...")
        if spec.kind == "url":
            from . import fleet

            redact_url(spec.url)
            url = fleet.answer_url(spec.url, fleet.identity(self.sys_root, self.proc))
            data = fetch(url, self.http_timeout, headers=fleet.headers(self.sys_root), pubkeys=spec.pubkeys,
                         facts=lambda: json.dumps(fleet.facts(self.sys_root, self.proc)).encode(), post=spec.facts)
            return self._found(source, data)
        if spec.kind == "file":
            return self._found(source, _read_local(Path(spec.path), source), spec.path)
        device = self._device_with_label(spec.where)
        if device is None:
            raise UserError(f"{source}: no filesystem with {clean(spec.where)} was found")
        return self._found(f"{source} ({device})", self._read_from_device(device, spec.path, source))

    def _device_with_label(self, where: str) -> str | None:
        """The device of ``LABEL=...`` or ``UUID=...`` (blkid, argv only)."""
        flag = "-L" if where.startswith("LABEL=") else "-U"
        result = self.runner.run(["blkid", flag, where.partition("=")[2]], check=False)
        device = result.stdout.strip().splitlines()[0] if result.ok and result.stdout.strip() else None
        return device

    def _read_from_device(self, device: str, inner: str, source: str) -> bytes:
        """``inner`` on ``device``, mounted read-only; a link that leads off that filesystem is refused."""
        mountpoint = tempfile.mkdtemp(prefix="phyllome-answers-")
        try:
            self.runner.run(["mount", "-o", "ro,nosuid,nodev,noexec", device, mountpoint])
            try:
                real = os.path.realpath(os.path.join(mountpoint, inner.lstrip("/")))
                if not real.startswith(mountpoint.rstrip("/") + "/"):
                    raise UserError(f"{source}: {clean(inner)} on {device} is a link that leads off that "
                                    "filesystem; refused")
                return _read_local(Path(real), source)
            finally:
                self.runner.run(["umount", mountpoint])
        finally:
            if not os.path.ismount(mountpoint):
                os.rmdir(mountpoint)
