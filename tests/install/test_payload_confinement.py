"""Hostile payload trees: links and special files in the deployment never reach the live system.

Real files on this machine: a deployment directory made of links to /etc/shadow, /dev/zero, FIFOs and links to
directories outside it, given to the real host-config and /boot copy code. Every read resolves inside the
deployment (openat2 RESOLVE_IN_ROOT), every write lands inside it, nothing is read as data from a special file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phyllome_installer import answers
from phyllome_installer.core.confined import Root
from phyllome_installer.core.errors import InstallFailure
from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.deploy import copy_ostree_boot
from phyllome_installer.hostconfig import HostConfig

pytestmark = pytest.mark.root
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "answers" / "good" / "reference.toml"


@pytest.fixture
def host():
    return answers.load(REFERENCE, redactor=None).config.host


@pytest.fixture
def outside(tmp_path):
    """A directory of the live system that a payload's links point at; it must stay empty."""
    path = tmp_path / "live-system"
    path.mkdir()
    (path / "secret").write_text("live secret\n")
    return path


def _deployment(tmp_path: Path) -> Path:
    root = tmp_path / "deploy"
    for rel in ("etc", "usr/lib/ostree-boot/efi/EFI/phyllome", "usr/lib/systemd/system"):
        (root / rel).mkdir(parents=True)
    (root / "usr/lib/ostree-boot/efi/EFI/phyllome/grubx64.efi").write_bytes(b"MZ grub")
    return root


def test_links_and_special_files_in_ostree_boot_are_not_copied(tmp_path, outside):
    deployment, boot = _deployment(tmp_path), tmp_path / "boot"
    boot.mkdir()
    source = deployment / "usr/lib/ostree-boot"
    os.symlink("/etc/shadow", source / "shadow")
    os.symlink(str(outside / "secret"), source / "secret")
    os.symlink("../../../../../../../../etc/shadow", source / "relative-shadow")
    os.symlink("/dev/zero", source / "zero")
    os.symlink(str(outside), source / "outside-dir")
    os.mkfifo(source / "fifo")
    copied = copy_ostree_boot(deployment, boot)
    assert copied == ["efi/EFI/phyllome/grubx64.efi"]
    assert (boot / "efi/EFI/phyllome/grubx64.efi").read_bytes() == b"MZ grub"
    assert sorted(p.name for p in boot.iterdir()) == ["efi"]


def test_ostree_boot_that_is_a_link_out_of_the_tree_reads_inside_the_tree(tmp_path, outside):
    deployment, boot = _deployment(tmp_path), tmp_path / "boot"
    boot.mkdir()
    os.rename(deployment / "usr/lib/ostree-boot", tmp_path / "elsewhere")
    os.symlink(str(outside), deployment / "usr/lib/ostree-boot")  # resolves to deploy/<outside path>: absent
    assert copy_ostree_boot(deployment, boot) == [] and list(boot.iterdir()) == []


def test_host_config_writes_land_inside_the_deployment_whatever_its_links_say(tmp_path, outside, host):
    deployment = _deployment(tmp_path)
    inside = deployment / str(outside).lstrip("/")
    inside.mkdir(parents=True)  # where the links resolve when the deployment is the root
    os.symlink(str(outside), deployment / "etc/modprobe.d")            # an absolute link to a live directory
    os.symlink("../../../../../../../../" + str(outside).lstrip("/"), deployment / "etc/modules-load.d")
    os.symlink(str(outside / "secret"), deployment / "etc/hosts")      # read: must not be the live file
    os.symlink(str(outside / "hostname"), deployment / "etc/hostname")  # write through a last-component link
    config = HostConfig(RecordingRunner(), deployment)
    config.system_files(host, cpu_vendor="intel", fstab_text="# fstab\n")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_text() == "live secret\n"
    assert (inside / "phyllome-kvm.conf").read_text() == "options kvm_intel nested=1\n"
    assert (inside / "phyllome-vfio.conf").exists()
    assert "live secret" not in (deployment / "etc/hosts").read_text()
    assert not (deployment / "etc/hosts").is_symlink() and not (deployment / "etc/hostname").is_symlink()
    assert (deployment / "etc/hostname").read_text() == host.hostname + "\n"


def test_a_link_to_a_directory_the_deployment_lacks_is_an_error_and_nothing_is_written_outside(tmp_path, outside,
                                                                                              host):
    deployment = _deployment(tmp_path)
    os.symlink(str(outside), deployment / "etc/modprobe.d")
    with pytest.raises(InstallFailure, match="cannot write /etc/modprobe.d/phyllome-kvm.conf"):
        HostConfig(RecordingRunner(), deployment).system_files(host, cpu_vendor="intel", fstab_text="")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_a_fifo_where_the_payload_has_etc_hosts_is_an_error_not_a_hang(tmp_path, host):
    deployment = _deployment(tmp_path)
    os.mkfifo(deployment / "etc/hosts")
    with pytest.raises(InstallFailure, match="cannot read /etc/hosts of the payload"):
        HostConfig(RecordingRunner(), deployment).system_files(host, cpu_vendor="amd", fstab_text="")


def test_groups_from_usr_lib_group_are_copied_once_and_never_with_gid_0(tmp_path):
    deployment = _deployment(tmp_path)
    (deployment / "etc/group").write_text("root:x:0:\nwheel:x:10:\n")
    (deployment / "etc/gshadow").write_text("root:*::\nwheel:*::\nlibvirt:!::\n")
    os.chmod(deployment / "etc/gshadow", 0o640)
    (deployment / "usr/lib/group").write_text("libvirt:x:975:\nkvm:x:0:\nbroken\n")
    groups = HostConfig(RecordingRunner(), deployment)._groups(["wheel", "libvirt", "kvm", "broken"])
    assert groups == {"root", "wheel", "libvirt"}
    assert (deployment / "etc/group").read_text() == "root:x:0:\nwheel:x:10:\nlibvirt:x:975:\n"
    assert (deployment / "etc/gshadow").read_text().count("libvirt:") == 1
    assert os.stat(deployment / "etc/gshadow").st_mode & 0o777 == 0o640


def test_the_confined_root_refuses_special_files_and_oversized_reads(tmp_path):
    root = Root(tmp_path)
    os.symlink("/dev/zero", tmp_path / "zero")
    (tmp_path / "big").write_bytes(b"x" * 2048)
    with pytest.raises(FileNotFoundError):
        root.read_bytes("zero")  # /dev/zero inside the root: there is none
    (tmp_path / "dev").mkdir()
    os.mkfifo(tmp_path / "dev/zero")
    with pytest.raises(OSError, match="not a regular file"):
        root.read_bytes("zero")
    with pytest.raises(OSError, match="larger than 1024 bytes"):
        root.read_bytes("big", limit=1024)
    os.symlink("/proc/self/fd/0", tmp_path / "magic")
    with pytest.raises(OSError):
        root.read_bytes("magic")
