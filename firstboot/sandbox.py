"""``phyllome-firstboot --sandbox``: the whole first boot, tried safely on any machine (``make demo-firstboot``).

Nothing of the host changes:

* the first boot's root is a directory under ``/var/tmp/phyllome-fb-sandbox/root``: its ``proc``, ``sys``, ``dev``
  and ``usr`` are links to this machine's (read, to check the real hardware), everything written (the first-boot
  marker, the saved profile, the result, ISOs you drop into ``var/lib/libvirt/isos``) stays under it;
* the VM store is a plain directory beside it (not encrypted: the unlock screen is skipped);
* libvirt is the embedded driver (``qemu:///embed?root=...``, no daemon; QEMU and swtpm as root without a security
  driver, their state under the sandbox), so the VM really is created, dry-run and defined with autostart, but
  only there, and never left running;
* kernel arguments are never applied: the screen says what would have been appended.

``sandbox_session`` is what the CLI calls; ``clean`` removes it all.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from phyllome_installer.core.runner import Runner

from .session import Session

log = logging.getLogger("phyllome.firstboot.sandbox")

BASE = Path("/var/tmp/phyllome-fb-sandbox")
"""Short: libvirt's sockets go below it (a UNIX socket path is at most 107 bytes)."""
LINKED = ("proc", "sys", "dev", "usr")
QEMU_CONF = """stdio_handler = "file"
user = "root"
group = "root"
swtpm_user = "root"
swtpm_group = "root"
security_driver = "none"
"""


class SandboxSession(Session):
    """A first boot whose kernel-argument changes are said, never made."""

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
    (the marker is put back each time, so every run is a first boot)."""
    base = Path(base)
    if base.is_symlink() or (base.exists() and not base.is_dir()):
        raise ValueError(f"{base} is not a directory")
    root, store = base / "root", base / "images"
    for directory in (root / "etc/phyllome", root / "var/lib/phyllome", root / "var/lib/libvirt/isos", store):
        directory.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = root / name
        if not link.is_symlink():
            link.symlink_to(f"/{name}")
    (root / "etc/phyllome/firstboot").write_text("installed-by=phyllome-firstboot --sandbox\n")
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


def sandbox_session(runner: Runner, base: Path = BASE) -> SandboxSession:
    """The session of a sandboxed first boot. Its swtpm's environment is set for this process (the embedded
    driver runs in it)."""
    root, store, uri, env = prepare(base)
    os.environ.update(env)
    log.info("sandbox: root %s, VM store %s, libvirt %s", root, store, uri)
    return SandboxSession(runner, root=root, uri=uri, store=store)


def clean(base: Path = BASE) -> None:
    """Remove the sandbox (its links are removed, never followed)."""
    if Path(base).is_dir() and not Path(base).is_symlink():
        shutil.rmtree(base)
