"""Install events for a fleet's server: the ``--json-progress`` events, POSTed one by one as JSON to ``[report]
url`` of the answer file (else the kernel argument ``phyllome.events=``). docs/fleet.md has the schema.

Delivery never slows or fails the install: :meth:`Reporter.emit` only puts the event on a bounded queue, a thread
POSTs it with a per-request deadline and a few retries (connection errors, 408, 429, 5xx); an event that finds
the queue full, or whose retries run out, is dropped and counted, and every later event says how many were
dropped so far. Closing waits a few seconds at most for the last events, none when the server was unreachable.
Secrets never leave the machine: recovery codes (``secret`` events) and log lines are not sent, and every string
goes through the redactor. Each event carries ``seq`` (1, 2, ...) and the machine's identity (:mod:`.fleet`).
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.files import read_text_bounded
from .core.progress import Event, FirstBootResult, InstallFailed, InstallFinished, InstallStarted, LogLine
from .core.secrets import REDACTOR, Redactor
from .core.sinks import FanOut, NullSink, Sink

if TYPE_CHECKING:
    from .answers import InstallConfig
    from .fleet import Identity

log = logging.getLogger("phyllome.events")

QUEUE_SIZE = 256
RETRIES = 3
REQUEST_TIMEOUT = 5.0
BACKOFF = 0.5
CLOSE_GRACE = 3.0
STALLED = 1.0
"""A request without an answer for this long, from a server that has never answered, is a hung server: closing
does not wait for it (it held the end of every install for the whole grace)."""
TAIL_LINES = 20
REPORT_FILE = "etc/phyllome/report.toml"
"""In the installed system: ``url = "..."``, where the first boot reports its result (``firstboot-result``)."""

Post = Callable[[str, bytes, float], int]


def http_post(url: str, body: bytes, timeout: float) -> int:
    """POST ``body`` (JSON) to ``url``; the HTTP status. Raises OSError/HTTPException on a broken transfer."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    host = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    connection = (http.client.HTTPSConnection(host, timeout=timeout, context=ssl.create_default_context())
                  if parts.scheme == "https" else http.client.HTTPConnection(host, timeout=timeout))
    headers = {"Content-Type": "application/json", "User-Agent": "phyllome-install"}
    if parts.username is not None:
        import base64

        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    try:
        connection.request("POST", urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, "")),
                           body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)
        return response.status
    finally:
        connection.close()


def _redacted(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, list):
        return [_redacted(v, redactor) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v, redactor) for k, v in value.items()}
    return value


class Reporter:
    """A sink that sends events to ``url`` on its own thread (bounded queue, bounded retries, drops counted)."""

    def __init__(self, url: str, machine: dict[str, str] | None = None, *, post: Post = http_post,
                 redactor: Redactor = REDACTOR, queue_size: int = QUEUE_SIZE, retries: int = RETRIES,
                 timeout: float = REQUEST_TIMEOUT, backoff: float = BACKOFF) -> None:
        from .discover import redact_url

        self.url = url
        self.shown = redact_url(url)  # its password, if any, joins the redactor
        self.machine = machine or {}
        self.post, self.redactor = post, redactor
        self.retries, self.timeout, self.backoff = retries, timeout, backoff
        self.dropped = 0
        self.sent = 0
        self.reachable = True
        self.answered = False
        self._posting_since: float | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[dict | None] = queue.Queue(maxsize=queue_size)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="phyllome-events", daemon=True)
        self._thread.start()

    def emit(self, event: Event) -> None:
        if getattr(event, "secret", False) or isinstance(event, LogLine):
            return
        with self._lock:
            self._seq += 1
            payload = {**event.to_dict(), "seq": self._seq, "machine": self.machine}
        try:
            self._queue.put_nowait(_redacted(payload, self.redactor))
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            with self._lock:
                payload["dropped"] = self.dropped
            if self._deliver(json.dumps(payload, sort_keys=True).encode()):
                self.sent += 1
            else:
                with self._lock:
                    self.dropped += 1

    def _deliver(self, body: bytes) -> bool:
        for attempt in range(self.retries):
            if attempt and (self._closing.is_set() and not self.reachable):
                return False
            self._posting_since = time.monotonic()
            try:
                status = self.post(self.url, body, self.timeout)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.reachable = False
                log.debug("events: %s: %s", self.shown, self.redactor.redact(str(exc) or type(exc).__name__))
            else:
                self.reachable = self.answered = True
                if 200 <= status < 300:
                    return True
                log.debug("events: %s answered HTTP %d", self.shown, status)
                if status not in (408, 429) and status < 500:
                    return False  # the server refuses this event: sending it again changes nothing
            finally:
                self._posting_since = None
            if attempt + 1 < self.retries:
                self._closing.wait(self.backoff * (2 ** attempt))
        return False

    def close(self, grace: float = CLOSE_GRACE) -> None:
        """Send what is queued within ``grace`` seconds (none when the server was unreachable), then stop."""
        self._closing.set()
        since = self._posting_since
        hung = not self.answered and since is not None and time.monotonic() - since > STALLED
        wait = self.reachable and not hung
        try:
            self._queue.put(None, timeout=grace if wait else 0.01)
            waiting_sentinel = 1
        except queue.Full:
            waiting_sentinel = 0
        self._thread.join(grace if wait else 0.0)
        if self._thread.is_alive():  # what is still queued is given up (the thread is a daemon: it ends with us)
            with self._lock:
                self.dropped += max(0, self._queue.qsize() - waiting_sentinel)
        log.info("events: %d sent to %s, %d dropped", self.sent, self.shown, self.dropped)


def events_url(config: InstallConfig | None, cmdline: str) -> str:
    """``[report] url``, else the kernel argument ``phyllome.events=`` (checked as the one grammar checks it)."""
    from .discover import parse_spec

    if config is not None and config.report.url:
        return config.report.url
    return parse_spec(cmdline).events


def with_events_url(config: InstallConfig, cmdline: str) -> InstallConfig:
    """``config`` with ``[report] url`` from ``phyllome.events=`` when the file has none: the installed system
    keeps it for the first boot's result."""
    url = events_url(config, cmdline)
    if not url or config.report.url == url:
        return config
    return config.model_copy(update={"report": config.report.model_copy(update={"url": url})})


def report_firstboot(root: Path, ok: bool, detail: str, who: Identity | None = None, grace: float = CLOSE_GRACE,
                     reporter_factory: Callable[[str, dict], Reporter] = Reporter) -> bool:
    """The first boot's result, to the URL the installer saved (none saved: nothing sent). Whether one was sent."""
    import tomllib

    from .fleet import identity

    try:
        url = tomllib.loads(read_text_bounded(Path(root) / REPORT_FILE, 64 * 1024)).get("url")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return False
    reporter = reporter_factory(url, (who or identity()).as_dict())
    reporter.emit(FirstBootResult(ok=ok, detail=REDACTOR.redact(detail)))
    reporter.close(grace)
    return reporter.sent > 0


def log_tail(path: Path | None, lines: int = TAIL_LINES, redactor: Redactor = REDACTOR) -> list[str]:
    if path is None:
        return []
    try:
        text = read_text_bounded(path, 8 << 20, errors="replace")
    except OSError:
        return []
    return [redactor.redact(line) for line in text.splitlines()[-lines:]]


def reported(config: InstallConfig, sink: Sink | None, install: Callable[[Sink], Any], *, cmdline: str,
             who: Identity, log_path: Path | None, source: str = "",
             reporter_factory: Callable[[str, dict], Reporter] = Reporter) -> Any:
    """Run ``install(sink)`` between an ``install-started`` and an ``install-finished`` or ``install-failed``
    event, each also sent to the events URL when there is one."""
    url = events_url(config, cmdline)
    reporter = reporter_factory(url, who.as_dict()) if url else None
    out: Sink = FanOut(*(s for s in (sink, reporter) if s is not None)) if (sink or reporter) else NullSink()
    start = time.monotonic()
    out.emit(InstallStarted(source=source, hostname=config.host.hostname))
    try:
        result = install(out)
    except BaseException as exc:
        out.emit(InstallFailed(error=REDACTOR.redact(str(exc) or type(exc).__name__), log_tail=log_tail(log_path)))
        if reporter is not None:
            reporter.close()
        raise
    if result.ok:
        out.emit(InstallFinished(seconds=round(time.monotonic() - start, 1)))
    else:
        out.emit(InstallFailed(task=result.failed_task, error=result.error, log_tail=log_tail(log_path)))
    if reporter is not None:
        reporter.close()
    return result
