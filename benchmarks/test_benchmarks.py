"""Performance targets (make bench). Not part of make test: timings belong here, never in unit tests."""

from __future__ import annotations

from benchmarks import first_paint


def test_installer_first_paint_within_twice_a_bare_textual_app():
    result = first_paint.main(runs=7)
    print(f"\nhello {result['hello_s']*1000:.0f} ms, installer {result['installer_s']*1000:.0f} ms, "
          f"ratio {result['ratio']:.2f}")
    assert result["ratio"] < 2.0


def test_firstboot_check_json_process_under_150_ms(tmp_path):
    """The whole `phyllome-firstboot check --json` process, interpreter start included, on this machine."""
    import shutil
    import statistics
    import subprocess
    import time
    from pathlib import Path

    tool = shutil.which("phyllome-firstboot") or str(Path(__file__).parents[1] / ".venv/bin/phyllome-firstboot")
    argv = [tool, "check", "--json", "--save", str(tmp_path / "hw.json"), "--log", str(tmp_path / "log")]
    subprocess.run(argv, capture_output=True, check=False)  # warm the page cache
    times = []
    for _ in range(10):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"\nphyllome-firstboot check --json: median {median * 1000:.0f} ms over 10 runs")
    assert median < 0.150
