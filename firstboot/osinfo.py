"""The guest catalogue: osinfo-db through libosinfo (``gi.repository.Libosinfo``), as virt-install's osdict does.

Every fact about a guest OS (its resources, firmware, virtio devices, q35) comes from osinfo-db; nothing here is a
hand-written table of them. Debian 12's osinfo-db stops at Fedora 37 and Ubuntu 22.10, so a short id it does not
know falls back to the newest entry of the same distro ("fedora40" -> fedora37), else to the newest generic
Linux entry (or the newest Windows for a ``win*`` id); :attr:`OsProfile.fallback` says so in words.

libosinfo reads ``OSINFO_SYSTEM_DIR`` (/usr/share/osinfo), ``OSINFO_LOCAL_DIR`` (/etc/osinfo) and
``OSINFO_USER_DIR``: a directory with newer ``os/*.xml`` entries extends the catalogue.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from phyllome_installer.core.errors import InstallFailure, UserError
from phyllome_installer.core.facts import OS_ID_PATTERN

ARCH = "x86_64"
VIRTIO = {"net": "http://pcisig.com/pci/1af4/1041", "block": "http://pcisig.com/pci/1af4/1042",
          "gpu": "http://pcisig.com/pci/1af4/1050", "input": "http://pcisig.com/pci/1af4/1052",
          "rng": "http://pcisig.com/pci/1af4/1044"}
Q35 = "http://qemu.org/chipset/x86/q35"
SHORT_ID = re.compile(OS_ID_PATTERN)


def _libosinfo():
    try:
        import gi

        gi.require_version("Libosinfo", "1.0")
        from gi.repository import Libosinfo
    except (ImportError, ValueError) as exc:
        raise InstallFailure(f"libosinfo is not available ({exc})",
                             hint="install gir1.2-libosinfo-1.0 and osinfo-db, and use Debian's python3") from exc
    return Libosinfo


@dataclass(frozen=True)
class Resources:
    memory: int | None = None
    cpus: int | None = None
    storage: int | None = None


@dataclass(frozen=True)
class OsProfile:
    """What the VM builder needs to know about one guest OS; every field comes from osinfo-db."""

    requested: str
    short_id: str
    name: str
    family: str  # "windows", "linux" or "other"
    distro: str
    version: str
    release: str
    minimum: Resources
    recommended: Resources
    recommended_source: dict[str, str] = field(default_factory=dict)  # key -> "osinfo recommended" | "... x2"
    efi: bool = True
    efi_required: bool = False
    bios: bool = True
    q35: bool = True
    virtio: dict[str, bool] = field(default_factory=dict)
    fallback: str = ""  # empty when osinfo-db knows the requested OS itself
    detected_from: str = ""  # the ISO it was detected from

    def to_dict(self) -> dict:
        return asdict(self)


def _family(os) -> str:
    family = (os.get_family() or "").lower()
    if family.startswith("win"):
        return "windows"
    return "linux" if family == "linux" else "other"


def _date(date) -> str:
    return f"{date.get_year():04d}-{int(date.get_month()):02d}-{date.get_day():02d}" if date else ""


def _release(os) -> str:
    return _date(os.get_release_date())


def _shown(os) -> str:
    """An OS as a person names it: "Windows 11 (win11)", "Fedora Linux 37 (fedora37)"."""
    return f"{(os.get_name() or '').removeprefix('Microsoft ')} ({os.get_short_id()})"


def _inverse(release: str) -> str:
    """A release date that sorts newest first."""
    return "".join(chr(0x7E - ord(c) + 0x20) if c.isdigit() else c for c in release)


def _prefix(short_id: str) -> str:
    """The distro part of a short id: fedora40 -> fedora, ubuntu24.04 -> ubuntu, win2k22 -> win2k."""
    return re.sub(r"[\d.]+$", "", short_id)


def _resources(lst) -> dict[str, Resources]:
    by_arch: dict[str, Resources] = {}
    for i in range(lst.get_length()):
        res = lst.get_nth(i)
        by_arch[res.get_architecture()] = Resources(
            memory=res.get_ram() if res.get_ram() > 0 else None,
            cpus=res.get_n_cpus() if res.get_n_cpus() > 0 else None,
            storage=res.get_storage() if res.get_storage() > 0 else None)
    return by_arch


def _pick(by_arch: dict[str, Resources], key: str) -> int | None:
    for arch in (ARCH, "all"):
        value = getattr(by_arch.get(arch, Resources()), key)
        if value:
            return value
    return None


class Catalogue:
    """osinfo-db, loaded once. ``extra_dirs`` are read after the default paths (tests add fixture entries)."""

    def __init__(self, extra_dirs: tuple[Path, ...] = ()) -> None:
        self._lib = _libosinfo()
        loader = self._lib.Loader()
        loader.process_default_path()
        for directory in extra_dirs:
            loader.process_path(str(directory))
        self.db = loader.get_db()
        self._oses = [os for os in self.db.get_os_list().get_elements() if os.get_short_id()]
        self._by_id = {sid: os for os in self._oses for sid in os.get_short_id_list()}

    def entries(self) -> list[dict]:
        rows = [{"short_id": os.get_short_id(), "name": os.get_name(), "family": _family(os),
                 "distro": os.get_distro() or "", "version": os.get_version() or "", "release": _release(os)}
                for os in self._oses]
        return sorted(rows, key=lambda r: (r["family"], r["distro"], r["release"], r["short_id"]))

    def pick_list(self, per_distro: int = 2, years: int = 10) -> list[tuple[str, str]]:
        """(name shown, short id) of the OSes a person is likely to install, for a pick list: per distro
        (``fedora``, ``win``, ``win2k``...) its newest ``per_distro`` releases that are not past their end of life
        and came out in the ``years`` before osinfo-db's newest entry (the list does not age with the clock).
        Windows first, newest first; then Linux and the rest by name."""
        dated = [os for os in self._oses if os.get_release_date() and not
                 re.search(r"-(unknown|rawhide|devel)$", os.get_short_id())]
        newest = max((_release(os) for os in dated), default="")
        oldest = f"{int(newest[:4]) - years:04d}{newest[4:]}" if newest else ""
        groups: dict[str, list] = {}
        for os in dated:
            eol = os.get_eol_date()
            if (eol and _date(eol) < newest) or _release(os) < oldest:
                continue
            groups.setdefault(_prefix(os.get_short_id()), []).append(os)
        chosen = [os for group in groups.values()
                  for os in sorted(group, key=lambda o: (_release(o), o.get_short_id()), reverse=True)[:per_distro]]
        order = {"windows": 0, "linux": 1}

        def key(os) -> tuple:
            name = _shown(os)
            if _family(os) == "windows":  # the desktop editions before the servers
                return 0, "Server" in name, "", _inverse(_release(os))
            return order.get(_family(os), 2), False, name.split()[0].casefold(), _inverse(_release(os))

        chosen.sort(key=key)
        return [(_shown(os), os.get_short_id()) for os in chosen]

    def _newest(self, candidates: list) -> object | None:
        dated = [os for os in candidates if os.get_release_date() and not
                 re.search(r"-(unknown|rawhide|devel)$", os.get_short_id())]
        return max(dated, key=lambda os: (_release(os), os.get_short_id()), default=None)

    def lookup(self, short_id: str) -> OsProfile:
        """The profile of ``short_id``, or of the entry it falls back to (said in ``fallback``)."""
        if not SHORT_ID.match(short_id or ""):
            raise UserError(f"{short_id!r} is not an OS short id: lower-case letters, digits, '.', '_' and '-' "
                            "(see phyllome-firstboot vm os-list)")
        if short_id in self._by_id:
            return self._profile(self._by_id[short_id], short_id, "")
        prefix = _prefix(short_id)
        same = [os for os in self._oses if _prefix(os.get_short_id()) == prefix] if prefix else []
        newest = self._newest(same)
        if newest is not None:
            return self._profile(newest, short_id, f"osinfo-db does not know {short_id}: using "
                                 f"{newest.get_short_id()} ({newest.get_name()}), the newest of its family it knows")
        windows = short_id.startswith("win")
        generic = self._newest([os for os in self._oses if re.fullmatch(r"win[\d.]+" if windows else r"linux\d{4}",
                                                                       os.get_short_id())])
        if generic is None:
            raise UserError(f"osinfo-db knows neither {short_id} nor a generic entry", hint="install osinfo-db")
        kind = "Windows" if windows else "Linux"
        return self._profile(generic, short_id, f"osinfo-db does not know {short_id}: using the generic {kind} "
                             f"entry {generic.get_short_id()} ({generic.get_name()})")

    def detect(self, iso: Path) -> OsProfile:
        """The OS on an installation ISO, by osinfo's media detection (volume id, publisher, ...)."""
        iso = Path(iso)
        if not iso.is_file():
            raise UserError(f"{iso}: no such installation ISO")
        try:
            # flags 0: identify by the ISO's volume/system/publisher ids even where the El Torito check fails
            media = self._lib.Media.create_from_location_with_flags(str(iso), None, 0)
        except Exception as exc:  # GLib.Error: not an ISO 9660 image, unreadable
            raise UserError(f"{iso}: cannot read it as an installation ISO ({getattr(exc, 'message', exc)})",
                            hint="give the OS with --os SHORTID") from exc
        if not self.db.identify_media(media) or media.get_os() is None:
            volume = media.get_volume_id() or "none"
            raise UserError(f"{iso}: osinfo-db does not recognise this ISO (volume id {volume!r})",
                            hint="give the OS with --os SHORTID (phyllome-firstboot vm os-list shows them)")
        os = media.get_os()
        profile = self._profile(os, os.get_short_id(), "")
        return OsProfile(**{**asdict(profile), "minimum": profile.minimum, "recommended": profile.recommended,
                            "detected_from": str(iso)})

    def _has_device(self, os, device_id: str) -> bool:
        devices = os.get_all_devices(None)
        return any(devices.get_nth(i).get_id() == device_id for i in range(devices.get_length()))

    def _profile(self, os, requested: str, fallback: str) -> OsProfile:
        minimum = _resources(os.get_minimum_resources())
        recommended = _resources(os.get_recommended_resources())
        rec: dict[str, int | None] = {}
        source: dict[str, str] = {}
        for key in ("memory", "cpus", "storage"):
            value = _pick(recommended, key)
            if value:
                rec[key], source[key] = value, "osinfo recommended"
            elif (low := _pick(minimum, key)) is not None:
                rec[key], source[key] = low * 2, "osinfo minimum x2"  # virt-install's rule
            else:
                rec[key] = None
        firmwares = os.get_complete_firmware_list(None)
        kinds = {}
        for i in range(firmwares.get_length()):
            fw = firmwares.get_nth(i)
            if fw.get_architecture() in (ARCH, "all"):
                kinds[fw.get_firmware_type()] = kinds.get(fw.get_firmware_type(), False) or fw.is_supported()
        efi = kinds.get("efi", True)  # osinfo lists firmware only where it is known; x86_64 UEFI is the default
        bios = kinds.get("bios", True)
        return OsProfile(
            requested=requested, short_id=os.get_short_id(), name=os.get_name(), family=_family(os),
            distro=os.get_distro() or "", version=os.get_version() or "", release=_release(os),
            minimum=Resources(*(_pick(minimum, k) for k in ("memory", "cpus", "storage"))),
            recommended=Resources(rec["memory"], rec["cpus"], rec["storage"]), recommended_source=source,
            efi=efi, efi_required=efi and not bios, bios=bios, q35=self._has_device(os, Q35),
            virtio={name: self._has_device(os, dev) for name, dev in VIRTIO.items()}, fallback=fallback)


#: How long media detection may take: libosinfo reads a few sectors of the ISO; more means it hangs.
DETECT_DEADLINE = 30.0


def detect_in_child(iso: Path, *, deadline: float = DETECT_DEADLINE, cancelled: Callable[[], bool] = lambda: False,
                    argv: Sequence[str] | None = None) -> str:
    """The short id of the OS on `iso`, detected by libosinfo in a child process.

    ``Media.create_from_location`` can block forever inside GLib (seen with the embedded libvirt driver loaded in
    the same process) and a thread stuck there can be neither stopped nor left behind by Quit. A child can: it is
    killed at the deadline or as soon as ``cancelled()`` says the screen that asked is gone. ``argv`` replaces the
    child's command (tests)."""
    command = list(argv) if argv is not None else [sys.executable, "-m", "firstboot.osinfo", "detect", str(iso)]
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True, cwd=Path(__file__).resolve().parents[1])
    end = time.monotonic() + deadline
    while True:
        try:
            out, _err = child.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if cancelled() or time.monotonic() > end:
                child.kill()
                child.communicate()
                if cancelled():
                    raise UserError(f"{Path(iso).name}: detection cancelled") from None
                raise UserError(f"{Path(iso).name}: the OS could not be detected within {deadline:.0f} s") from None
    try:
        answer = json.loads(out.strip().splitlines()[-1][:4096]) if out.strip() else {}
    except (ValueError, IndexError):
        answer = {}
    if answer.get("short_id"):
        return str(answer["short_id"])
    raise UserError(str(answer.get("error") or f"{Path(iso).name}: the OS could not be detected"))


def _main(args: list[str]) -> int:
    """``python -m firstboot.osinfo detect ISO``: one JSON line, the short id or the error (without CLI hints)."""
    if len(args) != 2 or args[0] != "detect":
        print(json.dumps({"error": "usage: python -m firstboot.osinfo detect ISO"}))
        return 2
    try:
        print(json.dumps({"short_id": Catalogue().detect(Path(args[1])).short_id}))
    except (UserError, InstallFailure) as exc:
        print(json.dumps({"error": exc.message}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
