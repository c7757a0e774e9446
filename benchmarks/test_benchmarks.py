"""Performance targets (make bench). Not part of make test: timings belong here, never in unit tests."""

from __future__ import annotations

from benchmarks import first_paint


def test_installer_first_paint_within_twice_a_bare_textual_app():
    result = first_paint.main(runs=7)
    print(f"\nhello {result['hello_s']*1000:.0f} ms, installer {result['installer_s']*1000:.0f} ms, "
          f"ratio {result['ratio']:.2f}")
    assert result["ratio"] < 2.0
