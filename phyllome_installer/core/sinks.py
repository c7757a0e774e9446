"""The sinks that carry progress events to a front end: plain text lines for a console, JSON lines for machines
(``--json-progress``), a queue that the TUI drains on its own thread, a list for tests.

Apart from :mod:`.progress` (the events): a command that only logs to its console (``phyllome-firstboot check``)
makes a :class:`TextSink` without creating the event classes; they are loaded with the first event emitted.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    import queue

    from .progress import Event


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...


class NullSink:
    def emit(self, event: Event) -> None:
        pass


class _LineSink:
    """One line per event on ``stream`` (None: standard output as it is at each event), each line whole."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def line(self, event: Event) -> str:
        raise NotImplementedError

    def emit(self, event: Event) -> None:
        stream = self.stream or sys.stdout
        line = self.line(event)
        with self._lock:
            stream.write(line + "\n")
            stream.flush()


class TextSink(_LineSink):
    """Plain text, one line per event (:func:`.progress.format_event`), for a console or a serial line."""

    def line(self, event: Event) -> str:
        from .progress import format_event  # loaded already: the event is one of its classes

        return format_event(event)


class JsonLinesSink(_LineSink):
    """One JSON object per line (``--json-progress``), for scripts and other front ends."""

    def line(self, event: Event) -> str:
        return json.dumps(event.to_dict(), sort_keys=True)


class QueueSink:
    """Puts events on a queue; the TUI drains it on its own thread. Never blocks the producer."""

    def __init__(self, q: queue.Queue[Event] | None = None) -> None:
        import queue  # only the TUI drains a queue

        self.queue: queue.Queue[Event] = q if q is not None else queue.Queue()

    def emit(self, event: Event) -> None:
        self.queue.put_nowait(event)

    def drain(self) -> list[Event]:
        import queue

        events: list[Event] = []
        while True:
            try:
                events.append(self.queue.get_nowait())
            except queue.Empty:
                return events


class ListSink:
    """Keeps every event; for tests and for summaries."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)


class FanOut:
    """Sends each event to several sinks."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = list(sinks)

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)
