"""Root-tier fixtures: a target loop disk, and a bystander loop disk that must never change."""

from __future__ import annotations

import pytest

from tests.loopdev import loop_image, sh, sha256


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


@pytest.fixture
def target(tmp_path):
    with loop_image(tmp_path / "target.img", "12G") as device:
        yield device
