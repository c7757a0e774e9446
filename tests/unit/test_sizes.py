"""The size texts people read in the plans and errors (phyllome_installer/core/sizes.py)."""

from __future__ import annotations

import pytest

from phyllome_installer.core.sizes import GiB, MiB, gib_text, human_size


@pytest.mark.parametrize(("size", "text"), [
    (8 * GiB, "8 GiB"), (GiB + GiB // 2, "1.5 GiB"), (256 * MiB, "256 MiB"), (MiB + MiB // 2, "1.5 MiB"),
    (22016 * MiB, "21.5 GiB"), (0, "0 GiB"),
])
def test_gib_text_says_small_sizes_in_mib(size, text):
    assert gib_text(size) == text


@pytest.mark.parametrize(("size", "text"), [(512, "512 B"), (8 * GiB, "8.0 GiB"), (1536 * MiB, "1.5 GiB")])
def test_human_size(size, text):
    assert human_size(size) == text
