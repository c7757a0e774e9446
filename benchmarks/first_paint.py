"""Time from process start to the first painted screen: the installer vs a bare Textual "hello" app.

Each run is a fresh interpreter (imports included), headless, 80x25; the app exits right after its first paint.
Usage: python benchmarks/first_paint.py [RUNS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

HELLO = """
from textual.app import App
from textual.widgets import Static
class Hello(App):
    def compose(self):
        yield Static("hello")
    def on_mount(self):
        self.call_after_refresh(self.exit)
Hello().run(headless=True, size=(80, 25))
"""

INSTALLER = """
from pathlib import Path
from phyllome_installer.core.runner import SubprocessRunner
from phyllome_installer.frontend import Installer
from phyllome_installer.sandbox import Sandbox
from screens.app import create_installer_app
app = create_installer_app(Installer(SubprocessRunner(), sandbox=Sandbox(Path("/var/tmp/phyllome-bench"))))
def first_paint():
    app.call_after_refresh(app.exit)
app.call_later(first_paint)
app.run(headless=True, size=(80, 25))
"""


def measure(code: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main(runs: int = 10) -> dict:
    """Medians, and each run's times (``hello``, ``installer``): the two apps take turns, so a busy moment of a
    shared machine hits both alike."""
    measure(HELLO, 1), measure(INSTALLER, 1)  # warm the page cache
    hello: list[float] = []
    installer: list[float] = []
    for _ in range(runs):
        hello += measure(HELLO, 1)
        installer += measure(INSTALLER, 1)
    h, i = statistics.median(hello), statistics.median(installer)
    return {"hello_s": h, "installer_s": i, "ratio": i / h, "hello": hello, "installer": installer}


if __name__ == "__main__":
    result = main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
    print(f"first paint, median of runs: hello {result['hello_s']*1000:.0f} ms, "
          f"installer {result['installer_s']*1000:.0f} ms, ratio {result['ratio']:.2f} (target <= 1.2)")
