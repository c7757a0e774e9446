"""The deployed host's configuration, written into the deployment's /etc (and /var through its bind mount).

hostname, vconsole.conf, locale.conf, localtime, fstab by UUID, admin users (``useradd --root``; passwords
hashed by ``openssl passwd -6 -stdin`` and set with ``chpasswd -e --root``, both on stdin; homes under
/var/home; ssh keys with the right owner and modes), nested virtualization, vfio modules, and the first-boot
marker ``/etc/phyllome/firstboot`` (only when ``[firstboot] enabled``) with ``[firstboot]`` saved beside it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .answers import FirstBoot, Host, User
from .core.facts import FIRSTBOOT_ANSWERS, FIRSTBOOT_MARKER
from .core.runner import Runner
from .core.secrets import REDACTOR, Redactor
from .core.targetfs import TargetFiles

log = logging.getLogger("phyllome.hostconfig")

VFIO_MODULES = ("vfio", "vfio_iommu_type1", "vfio_pci")
LIVE_FONT = Path("/usr/share/consolefonts/phyllome16.psf.gz")
"""The live medium's console font (live/font.py: 512 glyphs with every block element the screens draw)."""
HOST_FONT = "etc/phyllome/consolefonts/phyllome16.psf.gz"
"""Where the installed host keeps it: /etc, which every later deployment keeps (its /usr is the payload's)."""
MAX_FONT = 64 << 10
"""A 512-glyph 8x16 PSF1 font with its Unicode table is about 12 KiB gzipped."""


def vconsole_text(keymap: str, font: bool) -> str:
    """vconsole.conf: the keymap chosen, and the live medium's font by path (setfont takes a path, so the font
    need not be in the payload's /usr) so that the first boot on tty1 draws what it drew on the live medium."""
    return f"KEYMAP={keymap}\n" + (f"FONT=/{HOST_FONT}\n" if font else "")


def console_font(path: Path) -> bytes | None:
    """The font's bytes when ``path`` is a gzipped font of a sane size (read bounded), else None."""
    from .core.files import BoundedReadError, read_bounded

    try:
        data = read_bounded(path, MAX_FONT)
    except BoundedReadError:
        return None
    return data if data[:2] == b"\x1f\x8b" else None


def fstab(uuids: dict[str, str], root_fs: str, *, with_esp: bool = True) -> str:
    lines = ["# Written by phyllome-install. Partitions by filesystem UUID.",
             f"UUID={uuids['root']}  /          {root_fs}  defaults  0 0",
             f"UUID={uuids['boot']}  /boot      ext4  defaults  1 2"]
    if with_esp:
        lines.append(f"UUID={uuids['esp']}  /boot/efi  vfat  umask=0077,shortname=winnt  0 2")
    return "\n".join(lines) + "\n"


def nested_options(cpu_vendor: str) -> str:
    modules = {"intel": ["kvm_intel"], "amd": ["kvm_amd"]}.get(cpu_vendor, ["kvm_intel", "kvm_amd"])
    return "".join(f"options {module} nested=1\n" for module in modules)


def hosts_text(existing: str, hostname: str) -> str:
    """The payload's /etc/hosts with the hostname on 127.0.1.1 (Debian's convention; Fedora resolves it through
    nss-myhostname): without it, sudo and anything else that resolves the host's own name waits and complains."""
    def address(line: str) -> str:
        return next(iter(line.split("#", 1)[0].split()), "")

    names = hostname if "." not in hostname else f"{hostname} {hostname.split('.', 1)[0]}"
    kept = [line for line in existing.splitlines() if address(line) != "127.0.1.1"]
    if not any(address(line) == "127.0.0.1" for line in kept):
        kept.insert(0, "127.0.0.1\tlocalhost")
    return "\n".join([*kept[:1], f"127.0.1.1\t{names}", *kept[1:]]) + "\n"


def _unprivileged_group(line: str) -> bool:
    """A group line of /usr/lib/group that may be copied: four fields, a numeric gid that is not 0 (a payload's
    "libvirt:x:0:" would make the admin a member of root's group)."""
    fields = line.split(":")
    ok = len(fields) == 4 and fields[2].isdigit() and int(fields[2]) > 0
    if not ok:
        log.warning("group line %r of /usr/lib/group is not copied: not name:x:GID:members with GID > 0", line[:80])
    return ok


class HostConfig:
    """Writes the configuration of one deployment. ``root`` is the deployment directory."""

    def __init__(self, runner: Runner, root: Path, *, redactor: Redactor = REDACTOR,
                 files: TargetFiles | None = None) -> None:
        self.runner = runner
        self.root = Path(root)
        self.redactor = redactor
        self.files = (files or TargetFiles()).within(self.root)
        """Every read and write resolves inside the deployment: a payload's links never reach the live system."""

    def _write(self, rel: str, text: str, mode: int = 0o644) -> Path:
        path = self.files.write(rel, text, mode)
        log.debug("wrote /%s", rel)
        return path

    def system_files(self, host: Host, *, cpu_vendor: str, fstab_text: str, font: Path = LIVE_FONT) -> None:
        self._write("etc/hostname", host.hostname + "\n")
        self._write("etc/hosts", hosts_text(self.files.read_text("etc/hosts"), host.hostname))
        data = console_font(font)
        if data is not None:
            self._write(HOST_FONT, data)
        else:
            log.info("no console font at %s (not on the live medium): vconsole.conf names none", font)
        self._write("etc/vconsole.conf", vconsole_text(host.keyboard, data is not None))
        self._write("etc/locale.conf", f'LANG="{host.locale}"\n')
        self.files.symlink("etc/localtime", f"../usr/share/zoneinfo/{host.timezone}")
        log.debug("linked /etc/localtime to %s", host.timezone)
        self._write("etc/fstab", fstab_text)
        self._write("etc/modprobe.d/phyllome-kvm.conf", nested_options(cpu_vendor))
        self._write("etc/modules-load.d/phyllome-vfio.conf", "".join(m + "\n" for m in VFIO_MODULES))

    def report_url(self, url: str | None) -> None:
        """Where the first boot reports its result (events.py), never with credentials: those are not saved."""
        from .events import REPORT_FILE

        if url and "@" not in url.split("://", 1)[-1].split("/", 1)[0]:
            self._write(REPORT_FILE, f"url = {json.dumps(url)}\n")
        elif url:
            log.warning("[report] url holds credentials: they are not saved, the first boot will not report")

    def firstboot(self, version: str, answers: FirstBoot) -> None:
        """Save [firstboot] (never a secret: it has none) for the first boot; the marker only when it is enabled."""
        self._write(FIRSTBOOT_ANSWERS, answers.to_toml())
        if answers.enabled:
            self._write(FIRSTBOOT_MARKER, f"installed-by=phyllome-install {version}\n")
            # The payload ships and enables the units in /usr (phyllome_installer/units.py says why).
            if not self.files.dry and not self.files.exists("usr/lib/systemd/system/phyllome-firstboot.service"):
                log.warning("the payload has no phyllome-firstboot.service: the first boot will not start by itself "
                            "(run phyllome-firstboot on the installed system)")
        else:
            log.debug("[firstboot] enabled = false: no first-boot marker")

    def _group_lines(self, rel: str) -> dict[str, str]:
        text = self.files.read_text(rel)
        return {line.split(":", 1)[0]: line for line in text.splitlines() if line and ":" in line}

    def _groups(self, wanted: list[str]) -> set[str]:
        """The groups that exist, after copying those that exist only in /usr/lib/group into /etc/group.

        rpm-ostree hosts keep system groups (libvirt, kvm, ...) in /usr/lib/group through nss-altfiles; useradd
        only knows /etc/group. Anaconda copies the line over before it adds a user to such a group; so do we.
        """
        if self.files.dry:
            return set(wanted)
        etc = self._group_lines("etc/group")
        lib = self._group_lines("usr/lib/group")
        copied = [lib[g] for g in wanted if g not in etc and g in lib and _unprivileged_group(lib[g])]
        if copied:
            text = self.files.read_text("etc/group")
            self._write("etc/group", text + ("" if text.endswith("\n") or not text else "\n")
                        + "".join(line + "\n" for line in copied))
            if self.files.exists("etc/gshadow"):
                current = self.files.read_text("etc/gshadow")
                have = {line.split(":", 1)[0] for line in current.splitlines()}
                added = "".join(f"{name}:!::\n" for name in (line.split(":", 1)[0] for line in copied)
                                if name not in have)  # rpm-ostree trees may already have the entry
                self._write("etc/gshadow", current + ("" if current.endswith("\n") or not current else "\n")
                            + added, self.files.mode("etc/gshadow"))
            log.debug("copied groups %s from /usr/lib/group to /etc/group", [line.split(":")[0] for line in copied])
        return set(etc) | {line.split(":", 1)[0] for line in copied}

    def _ids(self, name: str) -> tuple[int, int]:
        for line in self.files.read_text("etc/passwd").splitlines():
            fields = line.split(":")
            if fields[0] == name and len(fields) >= 4 and fields[2].isdigit() and fields[3].isdigit():
                return int(fields[2]), int(fields[3])
        raise KeyError(name)

    def add_user(self, user: User) -> None:
        existing = self._groups(user.groups)
        groups = [g for g in user.groups if g in existing]
        for missing in sorted(set(user.groups) - existing):
            log.warning("group %s does not exist in the installed system; %s is not added to it", missing, user.name)
        self.files.mkdir("var/home")
        argv = ["useradd", "--root", str(self.root), "--create-home", "--home-dir", f"/var/home/{user.name}",
                "--shell", "/bin/bash", "--comment", user.full_name]
        if groups:
            argv += ["--groups", ",".join(groups)]
        self.runner.run([*argv, "--", user.name])
        if user.password is not None:
            password = user.password.get_secret_value()
            self.redactor.add(password)
            hashed = self.runner.run(["openssl", "passwd", "-6", "-stdin"], stdin=password + "\n",
                                     secret_output=True).stdout.strip()
        elif user.password_hash is not None:
            hashed = user.password_hash.get_secret_value()
        else:
            hashed = ""
        if hashed:
            if not self.files.dry:
                self.redactor.add(hashed)
            self.runner.run(["chpasswd", "--encrypted", "--root", str(self.root)], stdin=f"{user.name}:{hashed}\n")
        if user.ssh_keys:
            self._ssh_keys(user)

    def _ssh_keys(self, user: User) -> None:
        ssh = f"var/home/{user.name}/.ssh"
        keys = f"{ssh}/authorized_keys"
        self.files.mkdir(ssh, 0o700)
        self.files.write(keys, "".join(key + "\n" for key in user.ssh_keys), 0o600)
        if self.files.dry:
            return
        self.files.chmod(ssh, 0o700)
        uid, gid = self._ids(user.name)
        for path in (ssh, keys):
            self.files.chown(path, uid, gid)
        log.debug("installed %d ssh key(s) for %s", len(user.ssh_keys), user.name)
