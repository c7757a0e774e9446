"""A real kernel for the tests: Debian's own (it has F2FS), booted under QEMU with a tiny initramfs.

The harness resolves the current Debian kernel package at test time (never the cloud kernel, which has no F2FS),
downloads and unpacks it into a cache directory (never the host's /boot), runs depmod there, builds an initramfs
(busybox-static, the modules the tests need, the `init` beside this file), and runs QEMU bounded by `timeout`.
The guest sees this machine's root read-only over 9p and chroots into it (with writable overlays on /tmp, /run,
/mnt, /var/tmp), so it runs the project's own code from its own venv, wherever the checkout is. Results come back
through a second, writable 9p share. KVM is used only when a real test boot works; otherwise TCG. Everything is
cached between runs in $PHYLLOME_VM_CACHE (default /var/cache/phyllome-vm).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("PHYLLOME_VM_CACHE", "/var/cache/phyllome-vm"))
MODULES = ("virtio_pci virtio_blk virtio_mmio 9p 9pnet_virtio overlay f2fs ext4 vfat nls_cp437 nls_iso8859_1 nls_ascii "
           "loop xts cts ecb sha512_generic aesni_intel crc32c_generic crc32c_intel lz4_compress zstd_compress "
           "adiantum nhpoly1305 chacha_generic").split()


def run(*argv: str, cwd: Path | None = None) -> str:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True).stdout


def kernel_package() -> str:
    """The kernel package linux-image-amd64 depends on today, e.g. linux-image-6.1.0-56-amd64."""
    def depends() -> str:
        return subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True,
                              check=False).stdout

    out = depends()
    if "Depends: linux-image-" not in out:  # a fresh machine whose package lists were never fetched
        run("apt-get", "update", "-q")
        out = depends()
    names = re.findall(r"Depends: (linux-image-\S+)", out)
    names = [n for n in names if "cloud" not in n]
    if not names:
        raise RuntimeError(f"apt-cache knows no kernel for linux-image-amd64:\n{out}")
    return names[0]


@dataclass(frozen=True)
class Kernel:
    root: Path
    version: str

    @property
    def image(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.version}"


def fetch_kernel(cache: Path = CACHE) -> Kernel:
    package = kernel_package()
    root = cache / package
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        download = cache / "download"
        download.mkdir(parents=True, exist_ok=True)
        if not list(download.glob(f"{package}_*.deb")):
            run("apt-get", "download", package, cwd=download)
        deb = sorted(download.glob(f"{package}_*.deb"))[-1]
        run("dpkg-deb", "-x", str(deb), str(root))
        version = os.listdir(root / "lib" / "modules")[0]
        run("depmod", "-b", str(root), version)
        (root / ".complete").write_text(version)
    return Kernel(root, (root / ".complete").read_text().strip())


def build_initramfs(kernel: Kernel, cache: Path = CACHE) -> Path:
    """The initramfs for this kernel and this `init`; rebuilt only when either changes."""
    key = hashlib.sha256((HERE / "init").read_bytes() + kernel.version.encode() + " ".join(MODULES).encode())
    out = cache / f"initramfs-{key.hexdigest()[:16]}.cpio.gz"
    if out.exists():
        return out
    staging = cache / "initramfs-root"
    shutil.rmtree(staging, ignore_errors=True)
    for sub in ("bin", "sbin", "proc", "sys", "dev", "tmp", "host", "out", "lib/modules"):
        (staging / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", staging / "bin/busybox")
    shutil.copy2(HERE / "init", staging / "init")
    modules: set[str] = set()
    for module in MODULES:
        result = subprocess.run(["modprobe", "-d", str(kernel.root), "-S", kernel.version, "--show-depends", module],
                                capture_output=True, text=True, check=False)
        modules.update(line.split()[1] for line in result.stdout.splitlines() if line.startswith("insmod "))
    for ko in modules:
        rel = Path(ko).relative_to(kernel.root)
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ko, staging / rel)
    for name in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        source = kernel.root / "lib/modules" / kernel.version / name
        if source.exists():
            shutil.copy2(source, staging / "lib/modules" / kernel.version / name)
    run("depmod", "-b", str(staging), kernel.version)
    files = run("find", ".", cwd=staging)
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=staging, input=files.encode(),
                          capture_output=True, check=True).stdout
    gz = subprocess.run(["gzip", "-1"], input=cpio, capture_output=True, check=True).stdout
    out.write_bytes(gz)
    shutil.rmtree(staging)
    return out


def accelerator(kernel: Kernel, initramfs: Path) -> str:
    """kvm only when a real boot under KVM reaches the guest's init (/dev/kvm alone proves nothing here)."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    if not (os.access("/dev/kvm", os.W_OK) and re.search(r"\b(vmx|svm)\b", cpuinfo)):
        return "tcg"
    return "kvm" if boots_under_kvm(kernel, initramfs) else "tcg"


def boots_under_kvm(kernel: Kernel, initramfs: Path) -> bool:
    """A real kernel boots under KVM to the guest's init, within 30 s."""
    probe = subprocess.run(["timeout", "30", "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "512",
                            "-kernel", str(kernel.image), "-initrd", str(initramfs), "-append",
                            "console=ttyS0 panic=-1", "-nographic", "-no-reboot", "-nodefaults", "-serial",
                            "stdio"], capture_output=True, text=True, check=False)
    return "GUEST-START" in probe.stdout


@dataclass
class GuestRun:
    rc: int | None
    console: str
    guest_log: str
    out: Path


def boot(kernel: Kernel, initramfs: Path, script: Path, disk: Path, out: Path, *, accel: str = "tcg",
         timeout: int = 600) -> GuestRun:
    """Boot the guest, run `script` (a path on this machine, seen by the guest at the same path), return."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.is_file():
            stale.unlink()
    cpu = "host" if accel == "kvm" else "max"
    argv = ["timeout", str(timeout), "qemu-system-x86_64", "-accel", accel, "-cpu", cpu, "-smp", "2", "-m", "2048",
            "-kernel", str(kernel.image), "-initrd", str(initramfs),
            "-append", f"console=ttyS0 quiet panic=-1 phyllome.test={script}",
            "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
            "-drive", f"file={disk},if=virtio,format=raw,cache=unsafe",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={out},mount_tag=out,security_model=none"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    rc_file = out / "rc"
    log = out / "guest.log"
    return GuestRun(int(rc_file.read_text()) if rc_file.exists() else None, result.stdout + result.stderr,
                    log.read_text(errors="replace") if log.exists() else "", out)
