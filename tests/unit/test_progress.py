from __future__ import annotations

import io
import json
import logging
import threading

from phyllome_installer.core.progress import LogLine, TaskFailed, TaskFinished, TaskProgress, TaskStarted
from phyllome_installer.core.sinks import FanOut, JsonLinesSink, ListSink, QueueSink, TextSink

EVENTS = [
    TaskStarted("partition", "Partition the disk", index=2, total=9, timestamp=1.0),
    TaskProgress("pull", 0.5, "120/240 objects", timestamp=2.0),
    TaskFinished("partition", seconds=1.25, timestamp=3.0),
    TaskFailed("pull", "exit 1", timestamp=4.0),
    LogLine("hello", level="WARNING", timestamp=5.0),
]


def test_text_sink_lines():
    out = io.StringIO()
    sink = TextSink(out)
    for event in EVENTS:
        sink.emit(event)
    assert out.getvalue().splitlines() == [
        "[2/9] Partition the disk ...",
        "    pull:  50% 120/240 objects",
        "    partition: done (1.2 s)",
        "    pull: FAILED: exit 1",
        "WARNING: hello",
    ]


def test_json_lines_sink_round_trips():
    out = io.StringIO()
    sink = JsonLinesSink(out)
    for event in EVENTS:
        sink.emit(event)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["event"] for r in rows] == ["task-started", "task-progress", "task-finished", "task-failed", "log"]
    assert rows[0] == {"event": "task-started", "task": "partition", "title": "Partition the disk",
                       "index": 2, "total": 9, "timestamp": 1.0}
    assert rows[1]["fraction"] == 0.5


def test_queue_sink_takes_events_from_other_threads():
    sink = QueueSink()
    threads = [threading.Thread(target=lambda i=i: sink.emit(LogLine(str(i)))) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(e.line) for e in sink.drain()) == list(range(20))
    assert sink.drain() == []


def test_fan_out_and_frozen_events():
    a, b = ListSink(), ListSink()
    FanOut(a, b).emit(EVENTS[0])
    assert a.events == b.events == [EVENTS[0]]
    try:
        EVENTS[0].task = "x"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("events must be immutable")


def test_log_records_reach_the_console_sink_at_info_and_the_file_at_debug(install_log, redactor):
    handle, sink = install_log
    redactor.add("s3cret-value")
    logger = logging.getLogger("phyllome.test")
    logger.debug("debug detail")
    logger.info("visible %s", "s3cret-value")
    assert [e.line for e in sink.events] == ["visible [REDACTED]"]
    text = handle.path.read_text()
    assert "debug detail" in text and "visible [REDACTED]" in text and "s3cret-value" not in text


def test_redaction_covers_tracebacks(install_log, redactor):
    handle, _ = install_log
    redactor.add("tb-secret-xyz")
    try:
        raise RuntimeError("failed with tb-secret-xyz")
    except RuntimeError:
        logging.getLogger("phyllome.test").exception("boom")
    text = handle.path.read_text()
    assert "RuntimeError" in text and "tb-secret-xyz" not in text
