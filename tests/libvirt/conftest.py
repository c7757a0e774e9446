"""The libvirt tier: a real embedded QEMU driver (no daemon), one per session; every test leaves it empty."""

from __future__ import annotations

import pytest

from firstboot.libvirt_backend import connect
from tests.libvirt import embed


@pytest.fixture(scope="session")
def embedded():
    with embed.short_root("pv-") as root, embed.environment((prepared := embed.prepare(root))[1]):
        uri = prepared[0]
        conn = connect(uri)
        try:
            yield uri, conn, root
        finally:
            embed.clean(conn, root)
            conn.close()


@pytest.fixture
def libvirt_conn(embedded):
    """The session's connection; after each test nothing is defined or running, even when the test failed."""
    uri, conn, root = embedded
    yield conn
    left = embed.clean(conn, root)
    assert not left, f"the test left domains defined: {left}"
    assert not embed.qemu_pids(root)
