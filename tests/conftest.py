"""Shared fixtures. Tier markers: root (loop devices, mounts), libvirt (daemon), vm (QEMU guest)."""

from __future__ import annotations

import logging
import os

import pytest

from phyllome_installer.core.logs import setup_logging
from phyllome_installer.core.secrets import REDACTOR, Redactor
from phyllome_installer.core.sinks import ListSink
from tests.loopdev import loop_image, sh, sha256


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (loop devices, mounts); make test runs as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _process_redactor_per_test():
    """The process-wide redactor learns the secrets of every file a test validates in-process; each test starts
    with the secrets it had before, so one test's secret never masks another test's output."""
    with REDACTOR._lock:
        before = set(REDACTOR._secrets)
    yield
    with REDACTOR._lock:
        REDACTOR._secrets = before


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


@pytest.fixture(scope="session")
def bystander(tmp_path_factory):
    """A disk with data that is never the target: its sha256 must stay the same through every test."""
    path = tmp_path_factory.mktemp("bystander") / "bystander.img"
    with loop_image(path, "16M", "label: gpt\n,\n") as device:
        sh("mkfs.ext4", "-q", "-L", "BYSTANDER", device + "p1")
        yield device, sha256(device)


@pytest.fixture(autouse=True)
def bystander_untouched(request):
    if "root" not in request.keywords:
        yield
        return
    device, digest = request.getfixturevalue("bystander")
    yield
    assert sha256(device) == digest, f"{device} changed: a test touched a disk that was not its target"
