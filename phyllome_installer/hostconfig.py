"""The deployed host's configuration, written into the deployment's /etc (and /var through its bind mount).

hostname, vconsole.conf, locale.conf, localtime, fstab by UUID, admin users (``useradd --root``; passwords
hashed by ``openssl passwd -6 -stdin`` and set with ``chpasswd -e --root``, both on stdin; homes under
/var/home; ssh keys with the right owner and modes), nested virtualization, vfio modules, and the first-boot
marker ``/etc/phyllome/firstboot`` (only when ``[firstboot] enabled``) with ``[firstboot]`` saved beside it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from firstboot import state

from .answers import FirstBoot, Host, User
from .core.runner import Runner
from .core.secrets import REDACTOR, Redactor

log = logging.getLogger("phyllome.hostconfig")

FIRSTBOOT_MARKER = str(state.MARKER)
FIRSTBOOT_ANSWERS = str(state.ANSWERS)
VFIO_MODULES = ("vfio", "vfio_iommu_type1", "vfio_pci")


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


class HostConfig:
    """Writes the configuration of one deployment. ``root`` is the deployment directory."""

    def __init__(self, runner: Runner, root: Path, *, redactor: Redactor = REDACTOR) -> None:
        self.runner = runner
        self.root = Path(root)
        self.redactor = redactor

    def _write(self, rel: str, text: str, mode: int = 0o644) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        log.debug("wrote /%s", rel)
        return path

    def system_files(self, host: Host, *, cpu_vendor: str, fstab_text: str) -> None:
        self._write("etc/hostname", host.hostname + "\n")
        self._write("etc/vconsole.conf", f"KEYMAP={host.keyboard}\n")
        self._write("etc/locale.conf", f'LANG="{host.locale}"\n')
        localtime = self.root / "etc" / "localtime"
        if localtime.is_symlink() or localtime.exists():
            localtime.unlink()
        localtime.symlink_to(f"../usr/share/zoneinfo/{host.timezone}")
        log.debug("linked /etc/localtime to %s", host.timezone)
        self._write("etc/fstab", fstab_text)
        self._write("etc/modprobe.d/phyllome-kvm.conf", nested_options(cpu_vendor))
        self._write("etc/modules-load.d/phyllome-vfio.conf", "".join(m + "\n" for m in VFIO_MODULES))

    def firstboot(self, version: str, answers: FirstBoot) -> None:
        """Save [firstboot] (never a secret: it has none) for the first boot; the marker only when it is enabled."""
        self._write(FIRSTBOOT_ANSWERS, answers.to_toml())
        if answers.enabled:
            self._write(FIRSTBOOT_MARKER, f"installed-by=phyllome-install {version}\n")
            # The payload ships and enables the units in /usr (phyllome_installer/units.py says why).
            if not (self.root / "usr/lib/systemd/system/phyllome-firstboot.service").exists():
                log.warning("the payload has no phyllome-firstboot.service: the first boot will not start by itself "
                            "(run phyllome-firstboot on the installed system)")
        else:
            log.debug("[firstboot] enabled = false: no first-boot marker")

    def _groups(self) -> set[str]:
        text = (self.root / "etc" / "group").read_text()
        return {line.split(":", 1)[0] for line in text.splitlines() if line}

    def _ids(self, name: str) -> tuple[int, int]:
        for line in (self.root / "etc" / "passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2]), int(fields[3])
        raise KeyError(name)

    def add_user(self, user: User) -> None:
        existing = self._groups()
        groups = [g for g in user.groups if g in existing]
        for missing in sorted(set(user.groups) - existing):
            log.warning("group %s does not exist in the installed system; %s is not added to it", missing, user.name)
        (self.root / "var" / "home").mkdir(parents=True, exist_ok=True)
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
            self.redactor.add(hashed)
            self.runner.run(["chpasswd", "--encrypted", "--root", str(self.root)], stdin=f"{user.name}:{hashed}\n")
        if user.ssh_keys:
            self._ssh_keys(user)

    def _ssh_keys(self, user: User) -> None:
        uid, gid = self._ids(user.name)
        home = self.root / "var" / "home" / user.name
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys = ssh / "authorized_keys"
        keys.write_text("".join(key + "\n" for key in user.ssh_keys))
        keys.chmod(0o600)
        ssh.chmod(0o700)
        for path in (ssh, keys):
            os.chown(path, uid, gid)
        log.debug("installed %d ssh key(s) for %s", len(user.ssh_keys), user.name)
