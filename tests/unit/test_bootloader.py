"""The boot menu that follows ostree's deployments: the stub GRUB reads, where the menu lives, and what a tree
must ship for ostree to rewrite it (the boot tier boots it, upgrades and rolls back: tests/boot)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from phyllome_installer import bootloader, tasks
from phyllome_installer.core.errors import InstallFailure
from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.core.targetfs import TargetFiles
from storage.apply import TargetMounts


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


# What the payload's grub-mkconfig wrote at install time (the boot tier's disk), cut to the lines that matter.
MENU = """### BEGIN /etc/grub.d/10_linux ###
# ostree=/ostree/boot.1/phyllome/aaaa/1 (a comment: boots nothing)
### END /etc/grub.d/10_linux ###
### BEGIN /etc/grub.d/15_ostree ###
menuentry 'Debian GNU/Linux 12 (bookworm) 1.c4 ostree=/ostree/boot.1/phyllome/aaaa/1 (ostree:0)' --class os {
load_video
search --no-floppy --fs-uuid --set=root 69075f8d-6ad1-4432-81fa-0007d6ec58e6
linux /ostree/phyllome-aaaa/vmlinuz-6.1.0-57-amd64 root=UUID=1573 rw ostree=/ostree/boot.1/phyllome/aaaa/0
initrd /ostree/phyllome-aaaa/initramfs-6.1.0-57-amd64.img
}
### END /etc/grub.d/15_ostree ###
"""
EMPTY = "### BEGIN /etc/grub.d/15_ostree ###\n### END /etc/grub.d/15_ostree ###\n"
"""What it writes when 15_ostree finds no /ostree/repo (the deployment's /sysroot not bound): no entry at all."""


def _sysroot(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A physical sysroot as ostree lays it out: the deployment, and the boot.1 links ostree= names."""
    sysroot = tmp_path / "sysroot"
    deployment = sysroot / "ostree/deploy/phyllome/deploy/c0ffee.0"
    other = sysroot / "ostree/deploy/phyllome/deploy/beef.0"
    deployment.mkdir(parents=True)
    other.mkdir(parents=True)
    links = sysroot / "ostree/boot.1/phyllome/aaaa"
    links.mkdir(parents=True)
    (links / "0").symlink_to("../../../deploy/phyllome/deploy/c0ffee.0")
    (links / "1").symlink_to("../../../deploy/phyllome/deploy/beef.0")
    boot = sysroot / "boot"
    (boot / "loader.1").mkdir(parents=True)
    (boot / "loader").symlink_to("loader.1")
    return sysroot, deployment, boot


def test_the_deployments_a_menu_boots_are_its_linux_lines_ostree_arguments(tmp_path):
    sysroot, deployment, _ = _sysroot(tmp_path)
    assert bootloader.menu_deployments(MENU, sysroot) == {deployment.resolve()}  # not the comment, not the title
    assert bootloader.menu_deployments(EMPTY, sysroot) == set()


def test_the_boot_version_is_the_loader_link_or_nothing(tmp_path):
    _, _, boot = _sysroot(tmp_path)
    assert bootloader.boot_version(boot) == "1"
    (boot / "loader").unlink()
    (boot / "loader").symlink_to("../etc")
    assert bootloader.boot_version(boot) is None
    (boot / "loader").unlink()
    (boot / "loader").mkdir()
    assert bootloader.boot_version(boot) is None


def test_grub_mkconfig_runs_in_the_deployment_as_ostree_runs_it():
    assert bootloader.mkconfig_command(Path("/mnt/s/ostree/deploy/phyllome/deploy/c0ffee.0"), "1") == [
        "chroot", "/mnt/s/ostree/deploy/phyllome/deploy/c0ffee.0", "/usr/bin/env", "_OSTREE_GRUB2_BOOTVERSION=1",
        "/usr/sbin/grub-mkconfig", "-o", "/boot/loader.1/grub.cfg.partial"]


class _MkconfigWrites(RecordingRunner):
    """Stands in for the payload's grub-mkconfig (a mock: the real one runs in the boot tier's install): records
    the commands and writes `menu` where the command says."""

    def __init__(self, deployment: Path, menu: str) -> None:
        super().__init__()
        self.deployment, self.menu = deployment, menu

    def run(self, argv, **kwargs):
        if "/usr/sbin/grub-mkconfig" in argv:
            (self.deployment.parents[4] / argv[-1].lstrip("/")).write_text(self.menu)
        return super().run(argv, **kwargs)


def _context(tmp_path: Path, menu: str) -> SimpleNamespace:
    sysroot, deployment, boot = _sysroot(tmp_path)
    (boot / "loader.1/grub.cfg").write_text("the menu before\n")
    runner = _MkconfigWrites(deployment, menu)
    return SimpleNamespace(deployment=deployment, sysroot=sysroot, runner=runner, files=TargetFiles(),
                           mounts=TargetMounts(runner, sysroot))


def test_the_first_menu_from_grub_mkconfig_replaces_the_menu_once_it_boots_the_deployment_mock_mkconfig(tmp_path):
    ctx = _context(tmp_path, MENU)
    tasks.mkconfig_menu(ctx, ctx.sysroot / "boot")
    assert ("mount", "--bind", str(ctx.sysroot), str(ctx.deployment / "sysroot")) in ctx.runner.argvs
    assert (ctx.sysroot / "boot/loader/grub.cfg").read_text() == MENU
    assert not (ctx.sysroot / "boot/loader.1/grub.cfg.partial").exists()


def test_a_first_menu_without_the_deployment_replaces_nothing_mock_mkconfig(tmp_path):
    ctx = _context(tmp_path, EMPTY)
    with pytest.raises(InstallFailure, match="no entry that boots the new deployment c0ffee.0"):
        tasks.mkconfig_menu(ctx, ctx.sysroot / "boot")
    assert (ctx.sysroot / "boot/loader/grub.cfg").read_text() == "the menu before\n"
