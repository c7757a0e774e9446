"""Root-tier fixtures for storage tests. The bystander disk lives in tests/conftest.py (one per session)."""

from __future__ import annotations

import pytest

from tests.loopdev import loop_image


@pytest.fixture
def target(tmp_path):
    with loop_image(tmp_path / "target.img", "12G") as device:
        yield device
