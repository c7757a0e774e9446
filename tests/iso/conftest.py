"""The ISO tier: the live medium built once per session (live/build.py, cached under /var/cache/phyllome-live)."""

from __future__ import annotations

import pytest

from tests.boot.harness import OVMF_CODE
from tests.livemedium import built_medium, scratch, skip_unless_able


def pytest_collection_modifyitems(items) -> None:
    skip_unless_able(items, "iso", files=(OVMF_CODE,))


@pytest.fixture(scope="session")
def medium():
    return built_medium()


@pytest.fixture
def workdir():
    yield from scratch("phyllome-iso")
