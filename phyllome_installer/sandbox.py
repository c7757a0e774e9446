"""The sandbox: a safe target for demos, reviews and tests. No real disk is ever offered.

* a sparse disk image (16 GiB by default) under ``/var/tmp/phyllome-sandbox/``, attached to a loop device for
  the length of one install and detached afterwards;
* a small demo ostree payload built once: os-release, a kernel and an initramfs under ``usr/lib/modules/<kver>/``,
  ``usr/etc`` with passwd, group, shadow, gshadow and login.defs, and the tz database (a few hundred files);
* ``root_fs = "ext4"`` when the running kernel cannot mount F2FS (a visible notice says so).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import image_target
from .core.errors import UserError
from .core.interrupt import Stop
from .core.lock import flock_file
from .core.runner import Runner

if TYPE_CHECKING:
    from .answers import InstallConfig

log = logging.getLogger("phyllome.sandbox")

BASE = Path("/var/tmp/phyllome-sandbox")
DISK_SIZE = "16G"
REF = "phyllome/x86_64/sandbox"
KVER = "6.0.0-sandbox.x86_64"
OS_RELEASE = """\
NAME="Phyllome OS"
ID=phyllome
ID_LIKE=fedora
VERSION="sandbox"
VERSION_ID=0
PRETTY_NAME="Phyllome OS (sandbox payload)"
VARIANT_ID=sandbox
HOME_URL="https://phyllo.me/"
"""
PASSWD = "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n"
GROUP = "root:x:0:\nbin:x:1:\nwheel:x:10:\nkvm:x:36:\nlibvirt:x:978:\nqemu:x:107:\n"
SHADOW = "root:!locked::0:99999:7:::\nbin:*:19000:0:99999:7:::\n"
GSHADOW = "root:::\nbin:::\nwheel:::\nkvm:::\nlibvirt:!::\nqemu:!::\n"
LOGIN_DEFS = """\
MAIL_DIR /var/spool/mail
PASS_MAX_DAYS 99999
PASS_MIN_DAYS 0
UID_MIN 1000
UID_MAX 60000
SYS_UID_MIN 201
SYS_UID_MAX 999
GID_MIN 1000
GID_MAX 60000
SYS_GID_MIN 201
SYS_GID_MAX 999
CREATE_HOME yes
USERGROUPS_ENAB yes
ENCRYPT_METHOD SHA512
HOME_MODE 0700
"""


@dataclass
class Sandbox:
    base: Path = BASE
    leftovers: list[str] = field(default_factory=list, compare=False)
    """What the last attach cleaned up after an earlier, killed install (for the log and the front end)."""

    def __post_init__(self) -> None:
        # Mount points are compared with /proc/self/mountinfo, which holds resolved paths: a base given through a
        # symlink would otherwise leave its mounts behind.
        self.base = Path(self.base).resolve()

    @property
    def image(self) -> Path:
        return self.base / "disk.img"

    @property
    def repo(self) -> Path:
        return self.base / "repo"

    @property
    def sysroot(self) -> Path:
        return self.base / "sysroot"

    def ensure_payload(self, runner: Runner) -> str:
        """Build the demo ostree payload once; return its commit."""
        if (self.repo / "config").exists():
            result = runner.run(["ostree", f"--repo={self.repo}", "rev-parse", REF], check=False)
            current = runner.run(["ostree", f"--repo={self.repo}", "ls", REF, "/.fscrypt"], check=False).ok
            if result.ok and current:  # a payload built before the /.fscrypt link is built again
                return result.stdout.strip()
        log.info("building the sandbox payload in %s (once)", self.repo)
        shutil.rmtree(self.repo, ignore_errors=True)
        tree = self.base / "tree"
        shutil.rmtree(tree, ignore_errors=True)
        self._write_tree(tree)
        self.repo.mkdir(parents=True)
        runner.run(["ostree", f"--repo={self.repo}", "init", "--mode=archive"])
        runner.run(["ostree", f"--repo={self.repo}", "commit", f"--branch={REF}", f"--tree=dir={tree}",
                    "--subject=Phyllome OS sandbox payload", "--owner-uid=0", "--owner-gid=0"])
        shutil.rmtree(tree, ignore_errors=True)
        return runner.run(["ostree", f"--repo={self.repo}", "rev-parse", REF]).stdout.strip()

    @staticmethod
    def _write_tree(tree: Path) -> None:
        files = {
            "usr/lib/os-release": OS_RELEASE,
            f"usr/lib/modules/{KVER}/vmlinuz": "sandbox kernel: not bootable\n",
            f"usr/lib/modules/{KVER}/initramfs.img": "sandbox initramfs: not bootable\n",
            "usr/etc/passwd": PASSWD,
            "usr/etc/group": GROUP,
            "usr/etc/shadow": SHADOW,
            "usr/etc/gshadow": GSHADOW,
            "usr/etc/login.defs": LOGIN_DEFS,
            "usr/etc/skel/.bashrc": "# .bashrc\n",
            "usr/etc/hostname": "localhost\n",
        }
        for rel, text in files.items():
            path = tree / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for secret in ("usr/etc/shadow", "usr/etc/gshadow"):
            (tree / secret).chmod(0o000)
        (tree / "usr/etc/os-release").symlink_to("../lib/os-release")
        zoneinfo = Path("/usr/share/zoneinfo")
        if zoneinfo.is_dir():
            shutil.copytree(zoneinfo, tree / "usr/share/zoneinfo", symlinks=True,
                            ignore=shutil.ignore_patterns("posix", "right"))
        for rel in ("usr/bin", "usr/sbin", "usr/lib64", "var", "sysroot", "boot", "dev", "proc", "sys", "run",
                    "tmp", "mnt"):
            (tree / rel).mkdir(parents=True, exist_ok=True)
        for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"),
                             ("home", "var/home"), ("ostree", "sysroot/ostree"), (".fscrypt", "sysroot/.fscrypt")):
            (tree / link).symlink_to(target)

    @contextlib.contextmanager
    def attached(self, runner: Runner, size: str = DISK_SIZE, stop: Stop | None = None) -> Iterator[str]:
        """The sandbox disk image attached to a loop device for the duration of the block.

        The image is locked (``flock``) while attached; what an earlier, killed install left (mounts under the
        sandbox's system root, processes using them, loop devices on the image) is cleaned up first; an image
        mounted anywhere else is refused. Setting up and detaching are shielded from a stop request.
        """
        try:
            self.base.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UserError(f"the sandbox directory {self.base} is not a directory") from None
        self.leftovers = []
        with attached_image(runner, self.image, self.sysroot, int(size.rstrip("G")) << 30, stop=stop,
                            found=self.leftovers,
                            what="the sandbox image") as device:
            yield device

    def clean(self, runner: Runner) -> None:
        from . import leftovers

        leftovers.clean_mounts(runner, self.sysroot)
        leftovers.clean_image(runner, self.image, self.sysroot, detach=detach)
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def attached_image(runner: Runner, image: Path, sysroot: Path, size: int | None, *, stop: Stop | None = None,
                   found: list[str] | None = None, what: str = "the disk image") -> Iterator[str]:
    """A disk image attached to a loop device for the duration of the block (the sandbox, ``--target-image``).

    The image is created sparse when it does not exist (``size`` is then needed), and locked (``flock``) while
    attached. What an earlier, killed install left (mounts under ``sysroot``, processes using them, loop devices
    on the image) is cleaned up first and appended to ``found``; an image mounted anywhere else is refused.
    Setting up and detaching are shielded from a stop request.
    """
    from . import leftovers  # here, not at the top: the installer's first screen has no use for it (nor json)

    stop = stop or Stop()
    found = found if found is not None else []
    with stop.shielded():
        if not image.exists():
            if size is None:
                raise UserError(f"{image} does not exist: give its size (--image-size) to create it")
            image.parent.mkdir(parents=True, exist_ok=True)
            image_target.create(image, size)
        elif not image.is_file():
            raise UserError(f"{what} {image} is not a regular file")
        lock = flock_file(image, what)
    try:
        with stop.shielded():
            found += leftovers.clean_mounts(runner, sysroot)
            found += leftovers.clean_image(runner, image, sysroot, detach=detach)
            device = runner.run(["losetup", "--find", "--show", str(image)]).stdout.strip()
            if not device.startswith("/dev/loop"):
                raise UserError(f"could not attach {what} {image} to a loop device")
            leftovers.record_loop(device, image)  # what a later run may release if this one is killed
            # Partitions the kernel may still hold for this loop number from an earlier image (after a crash):
            runner.run(["partx", "-d", device], check=False)
            runner.run(["partx", "-u", device], check=False)
        try:
            yield device
        finally:
            with stop.shielded():
                detach(runner, device)
                leftovers.forget_loop(device)
    finally:
        os.close(lock)


def detach(runner: Runner, device: str, sys_root: Path = Path("/sys")) -> None:
    """Detach a loop device after its (and its partitions') dirty pages reached the image: see DESIGN notes.

    Only this device and its partitions are flushed: a global ``sync`` would send flushes to every block device,
    detached loop devices included (the kernel logs I/O errors for those).
    """
    name = Path(device).name
    block = sys_root / "block" / name
    partitions = sorted(p.name for p in block.glob(f"{name}p*")) if block.is_dir() else []
    for part in partitions:
        runner.run(["blockdev", "--flushbufs", f"/dev/{part}"], check=False)
    runner.run(["blockdev", "--flushbufs", device], check=False)
    runner.run(["partx", "-d", device], check=False)  # losetup -d leaves partitions added with partx behind
    runner.run(["losetup", "-d", device], check=False)


def fat_driver(which=shutil.which) -> str | None:
    """How this live system mounts the ESP: the kernel's vfat, fusefat, or not at all."""
    if kernel_can_mount("vfat"):
        return "kernel"
    return "fusefat" if which("fusefat") else None


def kernel_can_mount(fstype: str, proc: Path = Path("/proc")) -> bool:
    try:
        return any(line.split()[-1] == fstype for line in (proc / "filesystems").read_text().splitlines())
    except OSError:
        return False


def for_image(config: InstallConfig, device: str) -> InstallConfig:
    """The config with the attached image (``--target-image``) as its only target: naming it was the consent."""
    storage = config.storage.model_copy(update={"disk": device, "match": None, "wipe": device})
    return config.model_copy(update={"storage": storage})


def for_sandbox(config: InstallConfig, sandbox: Sandbox, device: str) -> InstallConfig:
    """The config with the sandbox disk as the only target and the demo payload; ext4 where F2FS cannot mount."""
    from .answers import LocalPayload

    f2fs = kernel_can_mount("f2fs")
    storage = config.storage.model_copy(update={
        "disk": device, "match": None, "wipe": device,
        "root_fs": config.storage.root_fs if f2fs else "ext4",
        "compression": config.storage.compression and f2fs,
    })
    payload = LocalPayload(kind="local", repo=str(sandbox.repo), ref=REF)
    return config.model_copy(update={"storage": storage, "payload": payload})
