"""Shared fixtures. Tier markers: root (loop devices, mounts), libvirt (daemon), vm (QEMU guest)."""

from __future__ import annotations

import logging
import os

import pytest

from phyllome_installer.core.logs import setup_logging
from phyllome_installer.core.progress import ListSink
from phyllome_installer.core.secrets import Redactor


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (loop devices, mounts); make test runs as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.fixture
def install_log(tmp_path, redactor):
    """The real install log set-up, writing to a temporary file, with a list sink as the console."""
    sink = ListSink()
    handle = setup_logging(tmp_path / "install.log", sink, redactor=redactor, console_level=logging.INFO)
    yield handle, sink
    handle.close()
