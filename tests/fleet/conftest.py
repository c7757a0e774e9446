"""The fleet tier: machines booted over the network from the live medium's pxe/ (live/build.py, cached under
/var/cache/phyllome-live), served by a stub fleet server on 127.0.0.1 (tests/fleet/server.py)."""

from __future__ import annotations

import pytest

from tests.boot.harness import OVMF_CODE
from tests.fleet.harness import IPXE_ROM
from tests.livemedium import built_medium, scratch, skip_unless_able


def pytest_collection_modifyitems(items) -> None:
    skip_unless_able(items, "fleet", tools=("openssl",), files=(OVMF_CODE, IPXE_ROM))


@pytest.fixture(scope="session")
def medium():
    return built_medium()


@pytest.fixture
def workdir():
    yield from scratch("phyllome-fleet")
