"""A fleet's answer endpoint, the installer's side (the initramfs's side is dracut/90phyllome/phyllome-lib.sh; both
pass tests/data/bootargs/identity.json and cases.json): who the machine is, what it is made of, and whose TLS key
the endpoint must hold. docs/fleet.md is the contract.

* :func:`identity`: ``uuid``, ``mac``, ``serial``, ``hostname`` read from an injectable /sys and /proc, each kept to
  the characters a query may hold unencoded (anything else dropped), as matchbox's ``/generic`` selectors take them;
* :func:`answer_url`: the ``phyllome.answers=`` URL with that identity in its query (before any ``#``);
* :func:`facts`: the JSON a server may ask for (HTTP 428, or ``phyllome.answers.facts``): DMI, NICs, disks, the
  virtualization verdict, in the shape of Proxmox's auto-installer plus ours;
* :func:`spki_sha256`: a certificate's public key pin in curl's ``--pinnedpubkey`` form, ``sha256//BASE64``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from .core.files import read_text_bounded

_KEEP = {"uuid": "0-9a-f-", "mac": "0-9a-f-", "serial": "A-Za-z0-9._~-", "hostname": "A-Za-z0-9.-"}


def _read(path: Path) -> str:
    try:
        return read_text_bounded(path, 4096, errors="replace").strip()
    except OSError:
        return ""


def keep(name: str, value: str) -> str:
    """``value`` with only the characters the query carries for ``name`` (the shell's ``tr -cd``), at most 64."""
    if name in ("uuid", "mac"):
        value = value.lower().replace(":", "-")
    return re.sub(f"[^{_KEEP[name]}]", "", value)[:64]


def interfaces(sys_root: Path = Path("/sys")) -> list[tuple[str, str, bool]]:
    """(name, MAC, up) of every network interface but the loopback, by name."""
    found = []
    net = sys_root / "class" / "net"
    for dev in sorted(net.iterdir()) if net.is_dir() else []:
        mac = _read(dev / "address")
        if dev.name == "lo" or not mac:
            continue
        found.append((dev.name, mac, _read(dev / "operstate") == "up"))
    return found


@dataclass(frozen=True)
class Identity:
    uuid: str = ""
    mac: str = ""
    serial: str = ""
    hostname: str = ""

    def query(self) -> str:
        """``uuid=...&mac=...&serial=...&hostname=...``, empty fields left out."""
        return "&".join(f"{k}={v}" for k, v in self.as_dict().items() if v)

    def as_dict(self) -> dict[str, str]:
        return {"uuid": self.uuid, "mac": self.mac, "serial": self.serial, "hostname": self.hostname}


def identity(sys_root: Path = Path("/sys"), proc: Path = Path("/proc")) -> Identity:
    """This machine: the DMI product UUID and serial, the MAC of the first interface that is up (by name; else the
    first), the kernel's hostname."""
    dmi = sys_root / "class" / "dmi" / "id"
    nics = interfaces(sys_root)
    up = [mac for _, mac, is_up in nics if is_up] or [mac for _, mac, _ in nics]
    return Identity(keep("uuid", _read(dmi / "product_uuid")), keep("mac", up[0] if up else ""),
                    keep("serial", _read(dmi / "product_serial")),
                    keep("hostname", _hostname(proc)))


def _hostname(proc: Path) -> str:
    """The kernel's hostname; none while it is still the kernel's placeholder (an initramfs without DHCP's)."""
    name = _read(proc / "sys" / "kernel" / "hostname")
    return "" if name in ("(none)", "localhost") else name


def headers(sys_root: Path = Path("/sys")) -> dict[str, str]:
    """The identity headers the initramfs sends too (Anaconda's inst.ks.sendsn/sendmac): the DMI serial and
    ``X-Phyllome-MAC-N: NAME MAC`` for every interface."""
    found = {}
    serial = re.sub(r"[^A-Za-z0-9._:/ -]", "", _read(sys_root / "class" / "dmi" / "id" / "product_serial"))
    if serial:
        found["X-Phyllome-Serial"] = serial
    for n, (name, mac, _) in enumerate(interfaces(sys_root)):
        found[f"X-Phyllome-MAC-{n}"] = f"{re.sub(r'[^A-Za-z0-9._-]', '', name)} {re.sub(r'[^0-9a-fA-F:]', '', mac)}"
    return found


def answer_url(url: str, who: Identity) -> str:
    """``url`` with ``who`` in its query: ``?`` or ``&`` as the URL needs, before a ``#fragment``."""
    query = who.query()
    if not query:
        return url
    base, hash_, fragment = url.partition("#")
    joiner = "&" if "?" in base and not base.endswith(("?", "&")) else ("" if base.endswith(("?", "&")) else "?")
    return f"{base}{joiner}{query}{hash_}{fragment}"


def facts(sys_root: Path = Path("/sys"), proc: Path = Path("/proc")) -> dict:
    """What the machine is made of, for a server that chooses the answer file by it."""
    dmi = sys_root / "class" / "dmi" / "id"
    fields = ("sys_vendor", "product_name", "product_serial", "product_uuid", "board_vendor", "board_name",
              "bios_vendor", "bios_version", "chassis_type")
    dmi_facts = {name: _read(dmi / name) for name in fields}
    disks = []
    block = sys_root / "block"
    for dev in sorted(block.iterdir()) if block.is_dir() else []:
        if dev.name.startswith(("loop", "ram", "zram", "dm-", "sr")):
            continue
        size = _read(dev / "size")
        disks.append({"name": dev.name, "size": int(size) * 512 if size.isdigit() else 0,
                      "model": _read(dev / "device" / "model"), "serial": _read(dev / "device" / "serial")})
    cpuinfo = _read_big(proc / "cpuinfo")
    flags = set(re.findall(r"\b(vmx|svm|hypervisor)\b", cpuinfo))
    return {
        "identity": identity(sys_root, proc).as_dict(),
        "dmi": dmi_facts,
        "network_interfaces": [{"link": name, "mac": keep("mac", mac), "up": up}
                               for name, mac, up in interfaces(sys_root)],
        "disks": disks,
        "virtualization": {"vmx": "vmx" in flags, "svm": "svm" in flags, "in_a_vm": "hypervisor" in flags},
    }


def _read_big(path: Path) -> str:
    try:
        return read_text_bounded(path, 1 << 20, errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------- the key pin
def _der(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of the content, end of the content) of the DER element at ``at``."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    if at + length > len(data):
        raise ValueError("truncated DER")
    return tag, at, at + length


def spki_sha256(certificate: bytes) -> str:
    """``sha256//BASE64`` of an X.509 certificate's SubjectPublicKeyInfo (DER), as curl's --pinnedpubkey."""
    _, start, _ = _der(certificate, 0)  # Certificate ::= SEQUENCE { tbsCertificate, ... }
    _, at, _ = _der(certificate, start)  # TBSCertificate ::= SEQUENCE
    tag, _, end = _der(certificate, at)
    if tag == 0xA0:  # [0] version
        at = end
    for _ in range(5):  # serialNumber, signature, issuer, validity, subject
        _, _, at = _der(certificate, at)
    tag, _, end = _der(certificate, at)
    if tag != 0x30:
        raise ValueError("no SubjectPublicKeyInfo")
    return "sha256//" + base64.b64encode(hashlib.sha256(certificate[at:end]).digest()).decode()
