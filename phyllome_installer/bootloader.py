"""Boot loaders, chosen from what the deployed tree ships and what the live system has.

* ``bootupd``: the tree ships ``bootupctl``: ``bootupctl backend install --auto --write-uuid --device DISK ROOT``,
  run inside the deployment (``chroot``), as Fedora's image-based installs do;
* ``grub-efi``: GRUB for EFI, ``--removable --no-nvram`` into the ESP (no firmware variable is touched): the
  payload's own GRUB when the tree ships it (``grub-install`` run inside the deployment, as bootupd prefers the
  tree's boot loader), else the live system's. The menu follows ostree's deployments: ``/boot/grub/grub.cfg`` is
  written once and only loads ``/boot/loader/grub.cfg``, which lives beside the BLS entries in ``loader.N/`` and
  is switched with them atomically. When the tree ships ``grub-mkconfig`` and ostree's ``15_ostree``
  (:data:`MKCONFIG`), every menu comes from them: the first one at install time, run as ostree's grub2 backend
  runs it (:func:`mkconfig_command`), then ``sysroot.bootloader grub2`` makes ostree run the same one at every
  deployment change (upgrades, rollbacks, kernel arguments). A tree without them gets one menu written here from
  the BLS entries (:func:`grub_cfg`), never rewritten;
* ``none``: the sandbox: ostree's BLS entries only.

The boot loader is written by the last task that changes the disk: until it succeeds, nothing on the disk boots.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .core import cmdline
from .core.errors import UserError


@dataclass(frozen=True)
class BootEntry:
    title: str
    linux: str
    initrd: str
    options: str


def read_bls(boot: Path) -> list[BootEntry]:
    entries = []
    for path in sorted((boot / "loader" / "entries").glob("*.conf")):
        fields: dict[str, str] = {}
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            fields[key] = value.strip()
        entries.append(BootEntry(fields.get("title", path.stem), fields.get("linux", ""), fields.get("initrd", ""),
                                 fields.get("options", "")))
    return entries


_GRUB_SAFE = re.compile(r"[A-Za-z0-9_./:,=+@%-]+")


def grub_word(text: str) -> str:
    """One word of GRUB's script language: single-quoted unless it is plainly safe."""
    return text if _GRUB_SAFE.fullmatch(text) else "'" + text.replace("'", "'\\''") + "'"


def grub_kernel_args(options: str) -> str:
    """A BLS ``options`` line as arguments of GRUB's ``linux`` command, one GRUB word per kernel argument.

    GRUB hands each word to the kernel and wraps a word holding spaces in double quotes itself, so the kernel's
    own quoting (``dyndbg="file drivers/usb/* +p"``) is undone here and each argument passed whole:
    the kernel then receives ``"dyndbg=file drivers/usb/* +p"``, which it reads as the same argument.
    """
    out = []
    for word in cmdline.words(options):
        name, value = cmdline.parse_word(word)
        out.append(grub_word(name if value is None else f"{name}={value}"))
    return " ".join(out)


def grub_cfg(entries: list[BootEntry], boot_uuid: str) -> str:
    """The one menu of a tree that ships no grub-mkconfig with 15_ostree: written once, from the BLS entries."""
    out = ["# Written by phyllome-install from the BLS entries in /boot/loader/entries.",
           "set timeout=3", "set default=0", ""]
    for entry in entries:
        out += [f"menuentry {grub_word(entry.title)} {{",
                f"    search --no-floppy --fs-uuid --set=root {grub_word(boot_uuid)}",
                f"    linux {grub_word(entry.linux)} {grub_kernel_args(entry.options)}",
                f"    initrd {grub_word(entry.initrd)}",
                "}", ""]
    return "\n".join(out)


def stub_cfg(boot_uuid: str) -> str:
    """/boot/grub/grub.cfg, written once: the menu is /loader/grub.cfg on the same partition (see the module)."""
    return "\n".join([
        "# Written once by phyllome-install. The menu is /loader/grub.cfg on this partition: ostree rewrites it",
        "# (grub-mkconfig with /etc/grub.d/15_ostree) at every deployment change, beside the BLS entries.",
        f"search --no-floppy --fs-uuid --set=root {grub_word(boot_uuid)}",
        "configfile ($root)/loader/grub.cfg", ""])


def loader_dir(boot: Path) -> Path:
    """Where ostree keeps the current BLS entries: /boot/loader is a link to loader.0 or loader.1."""
    link = boot / "loader"
    return boot / os.readlink(link) if link.is_symlink() else link


PAYLOAD_GRUB = ("usr/sbin/grub-install", "usr/lib/grub/x86_64-efi/linux.mod")
MKCONFIG = ("usr/sbin/grub-mkconfig", "etc/grub.d/15_ostree", "etc/default/grub")
"""What a deployment needs so that its grub-mkconfig writes the menu (``sysroot.bootloader grub2`` for ostree)."""
MENU_PARTIAL = "grub.cfg.partial"
"""The first menu's name while it is written and checked, beside the BLS entries; then renamed to grub.cfg."""
_LOADER_LINK = re.compile(r"loader\.([01])")


def boot_version(boot: Path) -> str | None:
    """ostree's boot version: the N of the /boot/loader -> loader.N link, None when there is no such link."""
    link = boot / "loader"
    found = _LOADER_LINK.fullmatch(os.readlink(link)) if link.is_symlink() else None
    return found.group(1) if found else None


def mkconfig_command(deployment: Path, version: str) -> list[str]:
    """The deployment's grub-mkconfig as ostree's grub2 backend runs it when no deployment is booted (an
    installer): chrooted into the deployment, the boot version in ``_OSTREE_GRUB2_BOOTVERSION`` (read by
    15_ostree's ``ostree admin instutil grub2-generate``). The menu goes to :data:`MENU_PARTIAL` in loader.N/."""
    return ["chroot", str(deployment), "/usr/bin/env", f"_OSTREE_GRUB2_BOOTVERSION={version}",
            "/usr/sbin/grub-mkconfig", "-o", f"/boot/loader.{version}/{MENU_PARTIAL}"]


_MENU_LINUX = re.compile(r"^\s*linux\S*\s.*$", re.MULTILINE)
_OSTREE_ARG = re.compile(r"(?:^|\s)ostree=(\S+)")


def menu_deployments(menu: str, sysroot: Path) -> set[Path]:
    """The deployments a GRUB menu boots: the ostree= argument of each ``linux`` line, resolved in the physical
    sysroot (/ostree/boot.N/... are links to the deployments)."""
    found = set()
    for line in _MENU_LINUX.findall(menu):
        for arg in _OSTREE_ARG.findall(line):
            found.add((sysroot / arg.strip("'\"").lstrip("/")).resolve())
    return found


def missing_from(deployment: Path, paths: tuple[str, ...]) -> list[str]:
    """Those of `paths` the deployment lacks (links are not followed: they point inside the deployment)."""
    return [path for path in paths if not os.path.lexists(deployment / path)]


SIGNED_CHAIN = ("usr/lib/shim/shimx64.efi.signed", "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")
"""Debian's shim (signed by Microsoft's UEFI CA) and GRUB (signed by Debian, trusted by shim): with both, the
payload's grub-install --uefi-secure-boot puts shim at the removable path and the signed GRUB beside it."""


def payload_grub_install_command(deployment: Path, *, secure_boot: bool = False) -> list[str]:
    """The payload's grub-install, inside the deployment (its /dev, /proc, /sys, /boot and ESP bound there).
    ``secure_boot``: the signed chain (shim -> signed GRUB), else an unsigned GRUB (Secure Boot must be off);
    said explicitly, since grub-install otherwise follows how the live system itself was booted."""
    return ["chroot", str(deployment), "/usr/sbin/grub-install", "--target=x86_64-efi", "--removable", "--no-nvram",
            "--uefi-secure-boot" if secure_boot else "--no-uefi-secure-boot",
            "--efi-directory=/boot/efi", "--boot-directory=/boot", "--bootloader-id=phyllome"]


def grub_available(which=shutil.which) -> bool:
    return bool(which("grub2-install") or which("grub-install"))


def choose(deployment: Path, *, sandbox: bool, which=shutil.which) -> str:
    if sandbox:
        return "none"
    if (deployment / "usr" / "bin" / "bootupctl").exists():
        return "bootupd"
    if not missing_from(deployment, PAYLOAD_GRUB) or which("grub2-install") or which("grub-install"):
        return "grub-efi"
    raise UserError("no boot loader can be installed: the tree ships neither bootupctl nor GRUB and this live "
                    "system has no grub-install",
                    hint="install Debian's grub-efi-amd64-bin or Fedora's grub2-efi-x64-modules")


def grub_install_command(esp: Path, boot: Path, which=shutil.which) -> list[str]:
    tool = which("grub2-install") or which("grub-install") or "grub-install"
    return [tool, "--target=x86_64-efi", "--removable", "--no-nvram", f"--efi-directory={esp}",
            f"--boot-directory={boot}", "--bootloader-id=phyllome"]


def grub_dir(boot: Path) -> Path:
    return boot / ("grub2" if (boot / "grub2").is_dir() else "grub")


def bootupd_command(deployment: Path, disk: str) -> list[str]:
    return ["chroot", str(deployment), "bootupctl", "backend", "install", "--auto", "--write-uuid",
            "--device", disk, "/"]
