"""The dracut tier: a real initramfs built by Debian's dracut-core with the 90phyllome module, booted under QEMU.

The kernel is the VM tier's (tests/vm/harness.py `fetch_kernel`: Debian's kernel unpacked in /var/cache). dracut
runs with a private module directory (the installed /usr/lib/dracut plus this checkout's dracut/90phyllome), no
host-only mode and a short module list, so it needs no running systemd. The guest mounts this machine's root
read-only over 9p as its "live root" (dracut's own virtfs module), so the switch to it is real; its init is
report.sh, which prints what the module left in /run/phyllome and powers off. The initramfs is cached by its
inputs: the module's source, dracut's version, the kernel, the module and driver lists.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.vm.harness import Kernel

HERE = Path(__file__).resolve().parent
MODULE = HERE.parents[1] / "dracut" / "90phyllome"
REPORT = HERE / "report.sh"
DRACUT_BASE = Path("/usr/lib/dracut")
CACHE = Path(os.environ.get("PHYLLOME_DRACUT_CACHE", "/var/cache/phyllome-dracut"))
# What a live image needs for the answer file, plus virtfs for the test's live root over 9p; network-legacy is the
# network handler (dhclient), as no NetworkManager or running systemd is needed to build or boot it.
DRACUT_MODULES = "bash base udev-rules virtfs network-legacy network url-lib phyllome".split()
# The flavour a Fedora live image boots: systemd in the initramfs (no network here: file, hd: and the partition).
SYSTEMD_MODULES = "bash systemd systemd-initrd dracut-systemd base udev-rules phyllome".split()
LIVE_LABEL = "PHYLLOME-LIVE"
DRIVERS = "virtio_pci virtio_blk virtio_net 9p 9pnet_virtio vfat ext4 nls_cp437 nls_iso8859_1".split()
SERIAL = "PHY-TEST-0042"


def dracut_version() -> str:
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", "dracut-core"], capture_output=True, text=True,
                          check=True).stdout


def module_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(MODULE.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _basedir(key: str) -> Path:
    """/usr/lib/dracut with this checkout's module added, as symlinks (dracut honours $dracutbasedir)."""
    base = CACHE / f"basedir-{key}"
    if base.exists():
        shutil.rmtree(base)
    (base / "modules.d").mkdir(parents=True)
    for entry in DRACUT_BASE.iterdir():
        if entry.name != "modules.d":
            (base / entry.name).symlink_to(entry)
    for module in (DRACUT_BASE / "modules.d").iterdir():
        (base / "modules.d" / module.name).symlink_to(module)
    shutil.copytree(MODULE, base / "modules.d" / MODULE.name)
    return base


def build_initramfs(kernel: Kernel, modules: list[str] = DRACUT_MODULES) -> Path:
    key_text = "\n".join([module_digest(), dracut_version(), kernel.version, " ".join(modules),
                          " ".join(DRIVERS)])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    out = CACHE / f"initramfs-{key}.img"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    base = _basedir(key)
    tmp = CACHE / "tmp"
    tmp.mkdir(exist_ok=True)
    confdir = CACHE / "empty.conf.d"
    confdir.mkdir(exist_ok=True)
    partial = out.with_suffix(".partial")
    argv = ["dracut", "--force", "--no-hostonly", "--no-hostonly-cmdline", "--no-early-microcode", "--no-compress",
            "--conf", "/dev/null", "--confdir", str(confdir), "--tmpdir", str(tmp),
            "--kver", kernel.version, "--kmoddir", str(kernel.root / "lib" / "modules" / kernel.version),
            "--modules", " ".join(modules), "--add-drivers", " ".join(DRIVERS), str(partial)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False,
                            env={**os.environ, "dracutbasedir": str(base)}, timeout=600)
    shutil.rmtree(base, ignore_errors=True)
    if result.returncode != 0 or not partial.exists():
        raise RuntimeError(f"dracut failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    partial.rename(out)
    return out


@dataclass
class Boot:
    console: str

    @property
    def report(self) -> str:
        match = re.search(r"PHYLLOME-REPORT-BEGIN\r?\n(.*?)PHYLLOME-REPORT-END", self.console, re.S)
        return match.group(1).replace("\r\n", "\n") if match else ""

    @property
    def status(self) -> str | None:
        match = re.search(r"^status: (.*)$", self.report, re.M)
        return match.group(1) if match else None

    @property
    def mode(self) -> str | None:
        match = re.search(r"^mode: (.*)$", self.report, re.M)
        return match.group(1) if match else None

    @property
    def answers(self) -> bytes | None:
        match = re.search(r"PHYLLOME-ANSWERS-BEGIN\n(.*)PHYLLOME-ANSWERS-END\n", self.report, re.S)
        return match.group(1).encode() if match else None

    def lines(self, word: str) -> list[str]:
        """Console lines that mention ``word`` (the kernel's own log excluded by `quiet`)."""
        return [line.strip() for line in self.console.splitlines() if word in line]


def live_root_disk(path: Path) -> Path:
    """A tiny ext4 live root on a file (mkfs.ext4 -d, no loop device): busybox-static, and report.sh as /sbin/init.
    For the systemd flavour, whose root= cannot be dracut's virtfs."""
    tree = path.parent / "live-root"
    shutil.rmtree(tree, ignore_errors=True)
    for sub in ("bin", "sbin", "proc", "sys", "dev", "run", "tmp"):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", tree / "bin" / "busybox")
    for applet in ("sh", "cat", "stat", "echo", "sleep"):
        (tree / "bin" / applet).symlink_to("busybox")
    shutil.copy2(REPORT, tree / "sbin" / "init")
    (tree / "etc").mkdir(exist_ok=True)
    (tree / "etc" / "os-release").write_text('NAME="Phyllome test live root"\nID=phyllome-test\n')  # systemd wants one
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", LIVE_LABEL, "-d", str(tree), str(path), "16M"],
                   capture_output=True, check=True)
    return path


def boot(kernel: Kernel, initramfs: Path, kargs: list[str], *, disk: Path | None = None,
         live_root: Path | None = None, timeout: int = 300) -> Boot:
    """Boot once with these extra kernel arguments; returns the serial console. The live root is this machine's
    root over 9p, or ``live_root`` (a disk from :func:`live_root_disk`, attached after ``disk``)."""
    root = (["root=virtfs:hostroot", "rd.fstab=0", f"init={REPORT}"] if live_root is None
            else [f"root=LABEL={LIVE_LABEL}", "ro", "systemd.show_status=0"])
    append = ["console=ttyS0", "quiet", "panic=-1", *root, "rd.emergency=poweroff", "rd.shell=0", "rd.retry=60",
              *kargs]
    argv = ["timeout", str(timeout), "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "1",
            "-m", "768", "-kernel", str(kernel.image), "-initrd", str(initramfs), "-append", " ".join(append),
            "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
            "-smbios", f"type=1,serial={SERIAL}",
            "-nic", "user,model=virtio-net-pci,mac=52:54:00:12:34:56",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"]
    for image in (disk, live_root):
        if image is not None:
            argv += ["-drive", f"file={image},if=virtio,format=raw,cache=unsafe"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    return Boot(result.stdout + result.stderr)
