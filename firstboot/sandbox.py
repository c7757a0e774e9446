"""``phyllome-firstboot --sandbox``: the whole first boot, tried safely on any machine (``make demo-firstboot``).

Nothing of the host changes:

* the first boot's root is a directory under ``/var/tmp/phyllome-fb-sandbox/root``: its ``proc``, ``sys``, ``dev``
  and ``usr`` are links to this machine's (read, to check the real hardware), everything written (the first-boot
  marker, the saved profile, the result, ISOs you drop into ``var/lib/libvirt/isos``) stays under it;
* the VM store is encrypted as the installer encrypts it (storage/fscrypt.py: a passphrase and a recovery
  protector, v2 policy), in a loop image ``store.img`` beside it (ext4 with the encrypt feature, which every
  kernel mounts; the installed host's is F2FS), mounted on ``vmfs``: a fresh store with a new passphrase at every
  run, locked, so the first boot starts at the unlock screen. The passphrase and the recovery code are said once
  on the terminal, never logged or written. When the sandbox ends the store is locked, unmounted and its loop
  device detached; what a killed sandbox left (its mount, its recorded loop device) is released by the next run;
* libvirt is the embedded driver (``qemu:///embed?root=...``, no daemon; QEMU and swtpm as root without a security
  driver, their state under the sandbox), so the VM really is created, dry-run and defined with autostart, but
  only there, and never left running;
* kernel arguments are never applied: the screen says what would have been appended.

``sandbox_session`` is what the CLI calls; ``clean`` removes it all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from phyllome_installer.core.runner import Runner
from phyllome_installer.core.secrets import REDACTOR

from .checks import Machine
from .session import Session
from .unlock import Unlocker

log = logging.getLogger("phyllome.firstboot.sandbox")

BASE = Path("/var/tmp/phyllome-fb-sandbox")
"""Short: libvirt's sockets go below it (a UNIX socket path is at most 107 bytes)."""
STORE_SIZE = 4 << 30
"""The store image's size (sparse): the VM's disk is created there (qcow2, or a sparse raw file)."""
STORE_IMAGE, STORE_FS = "store.img", "vmfs"

Attach = Callable[[Runner, Path, Path, int], AbstractContextManager[str]]
"""``attach(runner, image, mountpoint, size)``: the image (created sparse) on a loop device for the block, what an
earlier run left under ``mountpoint`` and on the image released first, the device recorded as ours while attached
(the composition root gives phyllome_installer.sandbox.attached_image)."""
LINKED = ("proc", "sys", "dev", "usr")
QEMU_CONF = """stdio_handler = "file"
user = "root"
group = "root"
swtpm_user = "root"
swtpm_group = "root"
security_driver = "none"
"""


def new_passphrase() -> str:
    """A passphrase a person can type from the terminal: ``sandbox-`` and three groups of five (about 75 bits)."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return "sandbox-" + "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(3))


class SandboxSession(Session):
    """A first boot whose kernel-argument changes are said, never made; :meth:`close` locks and releases its
    store."""

    passphrase: str = ""
    recovery_code: str = ""
    _stack: contextlib.ExitStack | None = None

    def close(self) -> None:
        """Lock the store, unmount it and detach its loop device (each step done even when one before failed)."""
        stack, self._stack = self._stack, None
        stop = getattr(self.runner, "stop", None)  # a stop request (SIGTERM) does not skip the release
        with stop.shielded() if stop is not None else contextlib.nullcontext():
            if stack is not None:
                stack.close()

    def read_machine(self) -> Machine:
        """The saved machine tree, with the store as it really is (its loop image, encrypted, maybe locked)."""
        return Machine(self.root, store=self.store)

    def apply_kargs(self, args: list[str]) -> str:
        log.info("sandbox: would append the kernel arguments %s; nothing was changed", " ".join(args))
        self.applied_kargs += args
        self.pending_reboot = True
        return " ".join(args) + " (sandbox: not applied)"

    def create(self, planned, *, dry_run: bool, start: bool, on_step=None):
        """Defined with autostart and dry-run in the sandbox's libvirt, never left running: its QEMU would
        outlive the screens."""
        return super().create(planned, dry_run=dry_run, start=False, on_step=on_step)


def prepare(base: Path = BASE) -> tuple[Path, Path, str, dict[str, str]]:
    """The sandbox's root, store, libvirt URI and the environment its swtpm needs; made once, kept between runs
    (the marker is put back each time, so every run is a first boot). The store is where the encrypted store is
    mounted (:func:`encrypted_store`)."""
    base = Path(base)
    if base.is_symlink() or (base.exists() and not base.is_dir()):
        raise ValueError(f"{base} is not a directory")
    root, store = base / "root", base / STORE_FS / "images"
    for directory in (root / "etc/phyllome", root / "var/lib/phyllome", root / "var/lib/libvirt/isos"):
        directory.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = root / name
        if not link.is_symlink():
            link.symlink_to(f"/{name}")
    (root / "etc/phyllome/firstboot").write_text("installed-by=phyllome-firstboot --sandbox\n")
    shutil.rmtree(base / "lv", ignore_errors=True)  # the last run's VM: its disk was in the last run's store
    uri, env = embedded_libvirt(base / "lv")
    return root, store, uri, env


def embedded_libvirt(directory: Path) -> tuple[str, dict[str, str]]:
    """``qemu:///embed?root=DIRECTORY`` set up to run here (QEMU and swtpm as root, no security driver, no
    virtlogd), and the environment swtpm_setup needs so that its local CA's state stays in DIRECTORY too."""
    (directory / "etc").mkdir(parents=True, exist_ok=True)
    (directory / "etc/qemu.conf").write_text(QEMU_CONF)
    xdg, localca = directory / "xdg", directory / "swtpm-localca"
    xdg.mkdir(exist_ok=True)
    localca.mkdir(exist_ok=True)
    (xdg / "swtpm-localca.conf").write_text(
        f"statedir = {localca}\nsigningkey = {localca}/signkey.pem\nissuercert = {localca}/issuercert.pem\n"
        f"certserial = {localca}/certserial\n")
    (xdg / "swtpm_setup.conf").write_text(
        f"create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = {xdg}/swtpm-localca.conf\n"
        "create_certs_tool_options = /etc/swtpm-localca.options\nactive_pcr_banks = sha256\n")
    return f"qemu:///embed?root={directory}", {"XDG_CONFIG_HOME": str(xdg)}


def encrypted_store(runner: Runner, base: Path, root: Path, attach: Attach, stack: contextlib.ExitStack):
    """A new, empty store in ``base/store.img``, encrypted by the installer's code and locked: (the store, its
    passphrase, its recovery code). Each step's undoing is pushed on ``stack`` (lock, unmount, detach)."""
    image, mountpoint = Path(base) / STORE_IMAGE, Path(base) / STORE_FS
    mountpoint.mkdir(exist_ok=True)
    device = stack.enter_context(attach(runner, image, mountpoint, STORE_SIZE))
    runner.run(["mkfs.ext4", "-q", "-F", "-O", "encrypt", device])  # a fresh store at every run
    runner.run(["mount", device, str(mountpoint)])
    stack.callback(_unmount, runner, mountpoint)
    store = mountpoint / "images"
    unlocker = Unlocker(runner, store=store, root=root, mountpoint=mountpoint)
    tool = unlocker.tool  # storage/fscrypt.py, configured by the sandbox root's etc/fscrypt.conf as on a host
    tool.write_config()
    tool.setup(mountpoint)
    passphrase = new_passphrase()
    REDACTOR.add(passphrase)  # before any command runs: never in the log
    protected = tool.encrypt(store, mountpoint, passphrase)
    REDACTOR.add(protected.recovery_code)
    stack.callback(tool.lock, store)  # the screens unlock it; locked again when the sandbox ends
    tool.lock(store)
    return store, passphrase, protected.recovery_code


def _unmount(runner: Runner, mountpoint: Path) -> None:
    if not runner.run(["umount", str(mountpoint)], check=False).ok:
        runner.run(["umount", "--lazy", str(mountpoint)], check=False)


def sandbox_session(runner: Runner, base: Path = BASE, *, attach: Attach) -> SandboxSession:
    """The session of a sandboxed first boot, its store encrypted and locked; call its ``close()`` when done.
    Its swtpm's environment is set for this process (the embedded driver runs in it)."""
    root, _, uri, env = prepare(base)
    os.environ.update(env)
    with contextlib.ExitStack() as stack:
        store, passphrase, code = encrypted_store(runner, Path(base), root, attach, stack)
        session = SandboxSession(runner, root=root, uri=uri, store=store)
        session.passphrase, session.recovery_code = passphrase, code
        session._stack = stack.pop_all()  # kept open: closed by session.close()
    log.info("sandbox: root %s, VM store %s (encrypted, locked), libvirt %s", root, store, uri)
    return session


def clean(base: Path = BASE) -> None:
    """Remove the sandbox (its links are removed, never followed); refused while its store is mounted (a
    sandbox still running, or killed: its next run releases the store)."""
    base = Path(base)
    if base.is_dir() and not base.is_symlink():
        if os.path.ismount(base / STORE_FS):
            raise ValueError(f"{base / STORE_FS} is mounted: end the sandbox first")
        shutil.rmtree(base)
