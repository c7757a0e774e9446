"""storage/blivet_worker.py: blivet's `udevadm settle` runs only where a udev daemon has a queue to settle."""

from __future__ import annotations

import pytest

blivet_udev = pytest.importorskip("blivet.udev")

from storage.blivet_worker import settle_only_with_udevd  # noqa: E402


def test_without_a_udev_daemon_settle_starts_no_process(tmp_path, monkeypatch):
    monkeypatch.setattr(blivet_udev, "settle", blivet_udev.settle)  # restored after the test
    original = blivet_udev.settle
    assert settle_only_with_udevd(tmp_path / "no-control") is True
    assert blivet_udev.settle is not original
    assert blivet_udev.settle() is None and blivet_udev.settle(quiet=True) is None


def test_with_a_udev_daemon_settle_is_blivets_own(tmp_path, monkeypatch):
    monkeypatch.setattr(blivet_udev, "settle", blivet_udev.settle)
    original = blivet_udev.settle
    (tmp_path / "control").touch()
    assert settle_only_with_udevd(tmp_path / "control") is False
    assert blivet_udev.settle is original
