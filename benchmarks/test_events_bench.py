"""The install's duration with an events server that is dead, or that accepts and never answers, against none
(issue 24: events never slow the install). Sandbox installs, interleaved; medians. make bench, never make test."""

from __future__ import annotations

import os
import socket
import statistics
import threading

import pytest

from benchmarks import compass

RUNS = int(os.environ.get("PHYLLOME_BENCH_EVENTS_RUNS", "3"))


def dead_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class Silent:
    """Accepts connections, reads nothing back, never answers (a hung server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.mark.root
def test_install_duration_with_a_dead_or_hung_event_server():
    if os.geteuid() != 0:
        pytest.skip("sandbox installs need root")
    silent = Silent()
    base = compass.ANSWERS.read_text()
    variants = {"no events": base,
                "dead event server": base + f'\n[report]\nurl = "http://127.0.0.1:{dead_port()}/events"\n',
                "hung event server": base + f'\n[report]\nurl = "http://127.0.0.1:{silent.port}/events"\n'}
    work = compass.WORK / "events"
    work.mkdir(parents=True, exist_ok=True)
    files = {}
    for index, (name, text) in enumerate(variants.items()):
        files[name] = work / f"answers-{index}.toml"
        files[name].write_text(text)
        files[name].chmod(0o600)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    original = compass.ANSWERS
    try:
        for run in range(RUNS):
            for name in variants:
                compass.ANSWERS = files[name]
                seconds[name].append(compass.install_once(work / f"install-{run}.log")["process"])
    finally:
        compass.ANSWERS = original
        silent.close()
    plain = statistics.median(seconds["no events"])
    for name, values in seconds.items():
        print(f"install with {name}: {statistics.median(values):.1f} s median of {RUNS} "
              f"(ratio {statistics.median(values) / plain:.2f})")
    # Within noise: each sandbox install varies by a few seconds on a shared machine.
    assert statistics.median(seconds["dead event server"]) <= plain * 1.15 + 2
    assert statistics.median(seconds["hung event server"]) <= plain * 1.15 + 2
