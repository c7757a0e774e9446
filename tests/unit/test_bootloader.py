"""The boot menu that follows ostree's deployments: the stub GRUB reads, where the menu lives, and what a tree
must ship for ostree to rewrite it (the boot tier boots it, upgrades and rolls back: tests/boot)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from phyllome_installer import bootloader


def _grub_check(text: str, tmp_path: Path) -> None:
    checker = shutil.which("grub-script-check")  # GRUB's own parser (Debian's grub2-common, from make setup)
    if checker is None:
        pytest.skip("grub-script-check is not installed (make setup installs grub2-common)")
    path = tmp_path / "grub.cfg"
    path.write_text(text)
    result = subprocess.run([checker, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stub_only_finds_the_boot_partition_and_loads_the_menu_beside_the_entries(tmp_path):
    text = bootloader.stub_cfg("1e36e83b-6446-4ccd-ac03-4671e55e34b9")
    _grub_check(text, tmp_path)
    commands = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert commands == ["search --no-floppy --fs-uuid --set=root 1e36e83b-6446-4ccd-ac03-4671e55e34b9",
                        "configfile ($root)/loader/grub.cfg"]


def test_a_hostile_uuid_stays_one_grub_word(tmp_path):
    text = bootloader.stub_cfg("x; reboot")
    _grub_check(text, tmp_path)
    assert "--set=root 'x; reboot'" in text


def test_the_menu_is_written_where_the_loader_link_points(tmp_path):
    boot = tmp_path / "boot"
    (boot / "loader.1" / "entries").mkdir(parents=True)
    (boot / "loader").symlink_to("loader.1")
    assert bootloader.loader_dir(boot) == boot / "loader.1"
    (boot / "loader").unlink()
    (boot / "loader").mkdir()
    assert bootloader.loader_dir(boot) == boot / "loader"


def test_what_a_tree_lacks_counts_links_into_the_tree_as_present(tmp_path):
    tree = tmp_path / "deploy"
    (tree / "etc/grub.d").mkdir(parents=True)
    (tree / "etc/default").mkdir(parents=True)
    # 15_ostree is an absolute link into the deployment's /usr: it dangles from outside, and it is there.
    (tree / "etc/grub.d/15_ostree").symlink_to("/usr/libexec/libostree/grub2-15_ostree-nowhere")
    (tree / "etc/default/grub").write_text("GRUB_TIMEOUT=3\n")
    assert bootloader.missing_from(tree, bootloader.MKCONFIG) == ["usr/sbin/grub-mkconfig"]
    (tree / "usr/sbin").mkdir(parents=True)
    (tree / "usr/sbin/grub-mkconfig").write_text("#!/bin/sh\n")
    assert bootloader.missing_from(tree, bootloader.MKCONFIG) == []
    assert bootloader.missing_from(tree, bootloader.PAYLOAD_GRUB) == list(bootloader.PAYLOAD_GRUB)
