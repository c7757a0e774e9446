"""ostree: the sequence Anaconda uses, as argv lists that the plan prints and the engine runs.

init-fs, ``sysroot.bootprefix``, ``sysroot.bootloader``, os-init ``phyllome``, pull the payload (``local``:
pull-local from the repository on the medium; ``url``: a remote with gpg-verify as configured, then pull;
``container``: ``ostree container image deploy`` where the live system has it), deploy with the kernel
arguments, ``sysroot.readonly true``, then ``/usr/lib/ostree-boot`` copied to /boot where the tree has it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from .answers import ContainerPayload, LocalPayload, Payload, UrlPayload
from .core.confined import Root
from .core.errors import InstallFailure, UserError
from .core.facts import OSNAME
from .core.runner import Runner
from .core.targetfs import TargetFiles

log = logging.getLogger("phyllome.deploy")

VIRT_KARGS = {
    "intel": ["intel_iommu=on", "iommu=pt", "rd.driver.pre=vfio-pci"],
    "amd": ["amd_iommu=on", "iommu=pt", "rd.driver.pre=vfio-pci"],
    "other": ["iommu=pt", "rd.driver.pre=vfio-pci"],
}


def kernel_args(root_uuid: str, cpu_vendor: str, extra: list[str]) -> list[str]:
    """``root=UUID=... rw``, the virtualization arguments for the CPU vendor, then the user's."""
    args = [f"root=UUID={root_uuid}", "rw", *VIRT_KARGS.get(cpu_vendor, VIRT_KARGS["other"])]
    return args + [arg for arg in extra if arg not in args]


def refspec(payload: Payload) -> str:
    if isinstance(payload, UrlPayload):
        return f"{payload.remote}:{payload.ref}"
    if isinstance(payload, LocalPayload):
        return f"{payload.remote}:{payload.ref}" if payload.upgrade_url else payload.ref
    return payload.image


def upgrade_source(payload: Payload) -> str:
    """Where the installed host's upgrades come from, in words."""
    if isinstance(payload, UrlPayload):
        return f"{payload.url} (remote {payload.remote})"
    if isinstance(payload, LocalPayload):
        if payload.upgrade_url:
            return f"{payload.upgrade_url} (remote {payload.remote})"
        return "none: installed from the medium, this host will not upgrade ([payload] upgrade_url is not set)"
    return f"the image's registry ({payload.image})"


def repo_of(sysroot: Path) -> Path:
    return sysroot / "ostree" / "repo"


def init_commands(sysroot: Path, *, bootloader: str = "none") -> list[list[str]]:
    repo = f"--repo={repo_of(sysroot)}"
    return [
        ["ostree", "admin", "init-fs", "--modern", str(sysroot)],
        # /boot is its own partition: BLS paths are relative to it, so no /boot prefix.
        ["ostree", "config", repo, "set", "sysroot.bootprefix", "false"],
        # ostree writes the BLS entries; the bootloader task installs what reads them.
        ["ostree", "config", repo, "set", "sysroot.bootloader", bootloader],
        # A fresh filesystem is filled once: no fsync per object during the pull and the deploy (as image builders
        # do); durable_commands turns it back on and syncs each filesystem once, before anything makes the disk
        # bootable (the boot loader is the last task that writes).
        ["ostree", "config", repo, "set", "core.fsync", "false"],
        ["ostree", "admin", "os-init", f"--sysroot={sysroot}", OSNAME],
    ]


def pull_commands(sysroot: Path, payload: Payload) -> list[list[str]]:
    repo = f"--repo={repo_of(sysroot)}"
    if isinstance(payload, LocalPayload) and payload.upgrade_url:
        # Installed from the medium, upgraded from the URL: the ref lands as the remote's, and the deployment's
        # origin names remote:ref (ostree admin upgrade follows it).
        gpg = "true" if payload.gpg_verify else "false"
        return [
            ["ostree", "remote", "add", repo, "--force", f"--set=gpg-verify={gpg}", payload.remote,
             payload.upgrade_url],
            ["ostree", repo, "pull-local", f"--remote={payload.remote}", payload.repo, payload.ref],
        ]
    if isinstance(payload, LocalPayload):
        return [["ostree", repo, "pull-local", payload.repo, payload.ref]]
    if isinstance(payload, UrlPayload):
        gpg = "true" if payload.gpg_verify else "false"
        return [
            ["ostree", "remote", "add", repo, "--force", f"--set=gpg-verify={gpg}", payload.remote, payload.url],
            ["ostree", repo, "pull", payload.remote, payload.ref],
        ]
    return []  # container images are pulled and deployed by one command: see deploy_commands


def deploy_commands(sysroot: Path, payload: Payload, kargs: list[str]) -> list[list[str]]:
    karg_options = [f"--karg={arg}" for arg in kargs]
    if isinstance(payload, ContainerPayload):
        deploy = ["ostree", "container", "image", "deploy", f"--sysroot={sysroot}", f"--stateroot={OSNAME}",
                  f"--imgref=ostree-unverified-{payload.transport}:{payload.image}", *karg_options]
    else:
        deploy = ["ostree", "admin", "deploy", f"--sysroot={sysroot}", f"--os={OSNAME}", *karg_options,
                  refspec(payload)]
    return [deploy, ["ostree", "config", f"--repo={repo_of(sysroot)}", "set", "sysroot.readonly", "true"]]


def durable_commands(sysroot: Path) -> list[list[str]]:
    """After the deploy: the installed system's repository fsyncs again (its upgrades must), and the root and /boot
    filesystems are each synced once: one syncfs instead of an fsync per object."""
    return [["ostree", "config", f"--repo={repo_of(sysroot)}", "set", "core.fsync", "true"],
            ["sync", "--file-system", str(sysroot)], ["sync", "--file-system", str(sysroot / "boot")]]


def check_payload(runner: Runner, payload: Payload) -> None:
    """Before any disk is touched: the payload exists and this live system can install it."""
    if isinstance(payload, ContainerPayload):
        if not runner.run(["ostree", "container", "--help"], check=False).ok:
            raise UserError("payload kind \"container\" needs ostree with container support (ostree-rs-ext, as "
                            "shipped by rpm-ostree); this live system's ostree has no `ostree container` command",
                            hint="use kind = \"local\" or \"url\", or boot a live image with rpm-ostree")
    elif isinstance(payload, LocalPayload):
        if not (Path(payload.repo) / "config").is_file():
            raise UserError(f"payload.repo: {payload.repo} is not an ostree repository")
        if not runner.run(["ostree", f"--repo={payload.repo}", "rev-parse", payload.ref], check=False).ok:
            raise UserError(f"payload.ref: {payload.ref} is not in the repository {payload.repo}")


def check_tree(runner: Runner, payload: Payload, *, encrypted_store: bool = False) -> list[str]:
    """What a bootable ostree commit lacks (local payloads, before anything is written): /usr/lib/os-release,
    /var, /sysroot, and a kernel with its initramfs in one /usr/lib/modules/KVER/. Also tells whether the tree
    ships bootupd (its boot loader is then the tree's own)."""
    if not isinstance(payload, LocalPayload):
        return []
    missing = []
    # /.fscrypt -> sysroot/.fscrypt: without it fscrypt cannot find the root filesystem's metadata on a booted
    # ostree host (it takes the deployment's "/" for the filesystem's main mount), and the VM store never unlocks.
    for path in ("/usr/lib/os-release", "/var", "/sysroot", *(("/.fscrypt",) if encrypted_store else ())):
        if not runner.run(["ostree", f"--repo={payload.repo}", "ls", payload.ref, path], check=False).ok:
            missing.append(path)
    listing = runner.run(["ostree", f"--repo={payload.repo}", "ls", "-R", payload.ref, "/usr/lib/modules"],
                         check=False)
    files = [line.split()[-1] for line in listing.stdout.splitlines() if line.startswith("-")]
    kernels = {Path(f).parent for f in files if Path(f).name == "vmlinuz"}
    initramfs = {Path(f).parent for f in files if Path(f).name == "initramfs.img"}
    if listing.stdout and not kernels & initramfs:
        missing.append("/usr/lib/modules/KVER/vmlinuz with its initramfs.img beside it")
    elif not listing.ok and not listing.stdout:
        missing.append("/usr/lib/modules (the kernel and its initramfs)")
    return missing


def ships(runner: Runner, payload: Payload, path: str) -> bool | None:
    """Whether a local payload's tree has `path` (None: not known before the pull)."""
    if not isinstance(payload, LocalPayload):
        return None
    return runner.run(["ostree", f"--repo={payload.repo}", "ls", payload.ref, path], check=False).ok


def ships_bootupd(runner: Runner, payload: Payload) -> bool | None:
    """Whether a local payload ships bootupctl (None: not known before the pull)."""
    return ships(runner, payload, "/usr/bin/bootupctl")


ACCOUNT_FIELDS = {"passwd": 7, "group": 4}


def payload_names(runner: Runner, payload: Payload) -> set[str]:
    """User and group names the payload already has (local payloads; others are known only after the pull).

    Their files are also what host-config reads and useradd edits after the disk is erased, so a line that is not
    ``name:x:ID:...`` with numeric ids is refused here, while nothing is written."""
    if not isinstance(payload, LocalPayload):
        return set()
    names: set[str] = set()
    for path in ("/usr/etc/passwd", "/usr/etc/group", "/usr/lib/passwd", "/usr/lib/group"):
        result = runner.run(["ostree", f"--repo={payload.repo}", "cat", payload.ref, path], check=False)
        if not result.ok:
            continue
        kind = path.rsplit("/", 1)[1]
        for number, line in enumerate(result.stdout.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split(":")
            ids = fields[2:4] if kind == "passwd" else fields[2:3]
            if len(fields) != ACCOUNT_FIELDS[kind] or not fields[0] or not all(i.isdigit() for i in ids):
                raise UserError(f"payload: line {number} of {path} is not a {kind} entry (expected "
                                f"{ACCOUNT_FIELDS[kind]} fields separated by ':', numeric ids): adding the admin "
                                "user would fail after the disk was erased; nothing was written",
                                hint="fix the payload's account files and build it again")
            names.add(fields[0])
    return names


def deployment_dir(sysroot: Path) -> Path:
    deploy_root = sysroot / "ostree" / "deploy" / OSNAME / "deploy"
    dirs = sorted(p for p in deploy_root.iterdir() if p.is_dir()) if deploy_root.is_dir() else []
    if len(dirs) != 1:
        raise InstallFailure(f"expected one deployment under {deploy_root}, found {len(dirs)}")
    return dirs[0]


def stateroot_var(sysroot: Path) -> Path:
    return sysroot / "ostree" / "deploy" / OSNAME / "var"


def copy_ostree_boot(deployment: Path, boot: Path, files: TargetFiles | None = None) -> list[str]:
    """Copy ``usr/lib/ostree-boot`` (EFI binaries, GRUB files the tree ships) into /boot; never overwrite.

    Both sides resolve inside their own root (a link in the payload to /etc/shadow reads the deployment's
    /etc/shadow, never the live system's); only regular files and directories are copied: links, devices and
    FIFOs in the payload are left out, with a warning."""
    files = files or TargetFiles()
    source = deployment / "usr" / "lib" / "ostree-boot"
    if files.dry:
        files.note(f"copy {source} to {boot} (where the tree has it)")
        return []
    tree = Root(deployment)
    if not tree.exists("usr/lib/ostree-boot"):
        return []
    try:
        copied, skipped = Root(boot).copy_tree_from(
            tree, "usr/lib/ostree-boot", skip=lambda rel: rel.split("/", 1)[0].startswith(("vmlinuz", "initramfs")))
    except NotADirectoryError:
        log.warning("the payload's /usr/lib/ostree-boot is not a directory: nothing copied to /boot")
        return []
    for rel in skipped:
        log.warning("not copied to /boot: /usr/lib/ostree-boot/%s is a link or a special file", rel)
    return copied


class ObjectCounter:
    """Pull progress for any pull: counts the objects in the target repository while the pull runs."""

    def __init__(self, repo: Path, expected: int | None, report: Callable[[int, int | None], None],
                 interval: float = 0.5, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.objects = repo / "objects"
        self.expected = expected
        self.report = report
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def count(self) -> int:
        total = 0
        for _, _, files in os.walk(self.objects):
            total += len(files)
        return total

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.report(self.count(), self.expected)

    def __enter__(self) -> ObjectCounter:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        self._stop.set()
        self._thread.join()
        self.report(self.count(), self.expected)


def count_objects(repo: Path) -> int | None:
    objects = Path(repo) / "objects"
    if not objects.is_dir():
        return None
    return sum(len(files) for _, _, files in os.walk(objects))
