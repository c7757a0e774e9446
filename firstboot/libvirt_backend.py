"""The primary VM in libvirt, on an injected connection URI.

``qemu:///system`` on Phyllome OS; ``qemu:///embed?root=DIR`` (no daemon) in the tests; ``test:///default`` for the
storage pool and network logic, which the embedded driver does not have. Nothing is created while the VM store is
locked. Before anything is committed, a dry run defines the domain, starts it paused, destroys and undefines it
(with its NVRAM and TPM state): a missing OVMF or swtpm, or a GPU group that cannot be given away, fails there and
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from phyllome_installer.core.errors import InstallFailure, UserError
from phyllome_installer.core.facts import FS_IOC_GET_ENCRYPTION_POLICY_EX
from phyllome_installer.core.interrupt import deferred
from phyllome_installer.core.runner import Runner, SubprocessRunner

from . import host as hostfacts
from . import kvm
from .vm import VmSpec, domain_xml

log = logging.getLogger("phyllome.vm")

FS_IOC_GET_ENCRYPTION_KEY_STATUS = 0xC080661A
POOL = "phyllome"
DEFAULT_NETWORK = """<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
  </ip>
</network>
"""
_loop_lock = threading.Lock()
_loop_started = False


def _libvirt():
    # The embedded driver logs to stderr at info level; a user needs only errors (they also come as exceptions).
    os.environ.setdefault("LIBVIRT_DEBUG", "4")
    import libvirt

    return libvirt


def _event_loop() -> None:
    """The embedded driver needs an event loop in this process: libvirt's default one, in a daemon thread."""
    global _loop_started
    libvirt = _libvirt()
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _loop_started = True


ANSWER_DEADLINE = 300.0
"""Seconds libvirt has to open a connection, and to give the host's facts (its first capabilities make libvirtd
start QEMU to learn what it can do: seconds on a slow machine, under a minute emulated)."""


class NoAnswer(InstallFailure):
    """libvirt did not answer in time; the call still waits in its thread."""


_busy: set[int] = set()
"""The connections (by id) a call is still using in its thread, answered or not."""


@contextlib.contextmanager
def held(conn) -> Iterator:
    """``conn``, closed at the end, unless a call on it is still running in its thread (unanswered, or its wait
    interrupted): closing it under the call would free what the call reads. Such a one goes with the process."""
    try:
        yield conn
    finally:
        if id(conn) not in _busy:
            conn.close()


def answered(call: Callable, what: str, uri: str, deadline: float | None = None, *, on=None):
    """``call()``'s result, or :class:`NoAnswer` when libvirt has not answered within ``deadline`` s (None:
    :data:`ANSWER_DEADLINE`). libvirt's calls
    wait for their reply however long it takes: a daemon stuck on its side would hold the first boot's screen (or
    an unattended first boot, before any login) forever. The call goes on in a daemon thread, abandoned; ``on``, the
    connection it uses, is marked busy until it returns (:func:`held` leaves it open)."""
    deadline = ANSWER_DEADLINE if deadline is None else deadline
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # given to the caller, in its thread
            outcome["error"] = exc
        finally:
            _busy.discard(id(on))

    if on is not None:
        _busy.add(id(on))
    worker = threading.Thread(target=run, daemon=True, name=f"libvirt: {what}")
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        raise NoAnswer(f"libvirt at {uri} did not answer within {deadline:g} s ({what})",
                       hint="is libvirtd (or virtqemud) stuck? See `journalctl -u libvirtd`; nothing was created, "
                            "and the first boot can run again")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def connect(uri: str, deadline: float | None = None):
    libvirt = _libvirt()
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors come back as exceptions, not on stderr
    if "embed" in uri:
        _event_loop()
    try:
        return answered(lambda: libvirt.open(uri), "opening the connection", uri, deadline)
    except libvirt.libvirtError as exc:
        raise InstallFailure(f"cannot connect to libvirt at {uri}: {exc.get_error_message()}",
                             hint="is libvirtd (or virtqemud) running?") from exc


def _unsupported(exc) -> bool:
    return exc.get_error_code() == _libvirt().VIR_ERR_NO_SUPPORT


# ---------------------------------------------------------------------------------------------- the VM store


@dataclass(frozen=True)
class StoreState:
    exists: bool
    encrypted: bool
    unlocked: bool


class VmExists(UserError):
    """A domain of that name is defined already (an unattended first boot treats it as done)."""


def store_state(store: Path) -> StoreState:
    """Whether the VM store exists, has an fscrypt policy, and (v2 policies) whether its key is present."""
    try:
        fd = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return StoreState(False, False, False)
    except NotADirectoryError:
        raise UserError(f"the VM store {store} is not a directory") from None
    try:
        arg = bytearray(struct.pack("Q", 24) + bytes(24))
        try:
            fcntl.ioctl(fd, FS_IOC_GET_ENCRYPTION_POLICY_EX, arg, True)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL):
                return StoreState(True, False, True)
            raise
        if arg[8] != 2:  # a v1 policy: its key lives in a keyring; try a name lookup instead
            return StoreState(True, True, _names_readable(store))
        status = bytearray(struct.pack("II32s24x", 2, 0, bytes(arg[16:32])) + bytes(64))
        fcntl.ioctl(fd, FS_IOC_GET_ENCRYPTION_KEY_STATUS, status, True)
        return StoreState(True, True, struct.unpack_from("I", status, 64)[0] == 2)
    finally:
        os.close(fd)


def _names_readable(store: Path) -> bool:
    probe = store / ".phyllome-unlock-probe"
    try:
        probe.touch()
        probe.unlink()
        return True
    except OSError:
        return False


def require_store(store: Path) -> StoreState:
    state = store_state(store)
    if not state.exists:
        raise UserError(f"the VM store {store} does not exist", hint="it is created by the installer "
                        "(encrypted with fscrypt); create the directory, or give --store DIR")
    if not state.unlocked:
        raise UserError(f"the VM store {store} is locked: nothing was created",
                        hint=f"unlock it first: phyllome-firstboot unlock, or fscrypt unlock {store}")
    return state


# ---------------------------------------------------------------------------------------------- the host


def _emulator(capabilities_xml: str, arch: str = "x86_64") -> str:
    node = ET.fromstring(capabilities_xml).find(f"guest/arch[@name='{arch}']/emulator")
    return node.text if node is not None and node.text else "qemu-system-x86_64"


def probe(conn, root: Path = Path("/"), runner: Runner | None = None) -> hostfacts.HostFacts:
    """The host's facts from its libvirt: the domain type (kvm where a guest really runs under it, the same verdict
    as the hardware checks), domain capabilities, drivers."""
    libvirt = _libvirt()
    caps = conn.getCapabilities()
    types = hostfacts.domain_types(caps)
    if not types:
        raise InstallFailure("libvirt offers no x86_64 hvm guests", hint="install qemu-system-x86")
    verdict = None
    if "kvm" in types:
        # Kept for the boot on the live root only: a saved machine tree is never written into.
        verdict = kvm.probe_once(runner or SubprocessRunner(), emulator=_emulator(caps), dev=Path(root) / "dev/kvm",
                                 cache=kvm.CACHE if Path(root) == Path("/") else None)
    domain_type, smm, note = hostfacts.accelerator(types, verdict)
    domcaps = conn.getDomainCapabilities(None, "x86_64", "q35", domain_type, 0)
    try:
        conn.listAllNetworks()
        network = True
    except libvirt.libvirtError as exc:
        if not _unsupported(exc):
            raise
        network = False
    virtio_win = next((str(Path("/") / p) for p in hostfacts.VIRTIO_WIN if (Path(root) / p).is_file()), None)
    return hostfacts.parse(caps, domcaps, libvirt_version=conn.getLibVersion(), domain_type=domain_type,
                           virtio_win=virtio_win, network=network, smm=smm, accelerator_note=note)


# ---------------------------------------------------------------------------------------------- creating


@dataclass
class Created:
    name: str
    xml: str
    steps: list[str] = field(default_factory=list)
    dry_run_seconds: float = 0.0


class Backend:
    def __init__(self, conn, runner: Runner, *, root: Path = Path("/")) -> None:
        self.conn = conn
        self.runner = runner
        self.root = Path(root)
        self.libvirt = _libvirt()

    # -- storage pool, volume, network

    def ensure_pool(self, store: Path):
        """A dir pool on the VM store (an existing pool on that path is reused); None without a storage driver."""
        libvirt = self.libvirt
        try:
            pools = self.conn.listAllStoragePools()
        except libvirt.libvirtError as exc:
            if _unsupported(exc):
                return None
            raise
        for pool in pools:
            path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path")
            if path == str(store):
                if not pool.isActive():
                    pool.create(0)
                return pool
            if pool.name() == POOL:
                raise UserError(f"libvirt's storage pool {POOL!r} is on {path}, not on {store}",
                                hint=f"use --store {path}, or remove the pool: virsh pool-destroy {POOL}; "
                                     f"virsh pool-undefine {POOL}")
        xml = ET.Element("pool", type="dir")
        ET.SubElement(xml, "name").text = POOL
        ET.SubElement(ET.SubElement(xml, "target"), "path").text = str(store)  # escaped, whatever the path holds
        pool = self.conn.storagePoolDefineXML(ET.tostring(xml, encoding="unicode"), 0)
        pool.setAutostart(1)
        pool.create(0)
        return pool

    def create_volume(self, spec: VmSpec, pool) -> bool:
        """The VM's disk (sparse); True when it was created now (so a failure can take it back)."""
        disk = Path(spec.disk)
        if pool is not None:
            pool.refresh(0)
            if disk.name in pool.listVolumes():
                return False
            volume = ET.Element("volume")
            ET.SubElement(volume, "name").text = disk.name
            ET.SubElement(volume, "capacity", unit="bytes").text = str(spec.disk_size)
            ET.SubElement(ET.SubElement(volume, "target"), "format", type=spec.disk_format)
            try:
                pool.createXML(ET.tostring(volume, encoding="unicode"), 0)
            except self.libvirt.libvirtError as exc:  # e.g. a qcow2 disk without qemu-img on the host
                raise InstallFailure(f"the VM's disk {disk} cannot be created: {exc.get_error_message()}",
                                     hint="nothing was created; libvirt creates qcow2 disks with qemu-img "
                                          "(qemu-utils)") from exc
            return True
        if disk.exists():
            return False
        self.runner.run(["qemu-img", "create", "-q", "-f", spec.disk_format, str(disk), str(spec.disk_size)])
        return True

    def remove_volume(self, spec: VmSpec, pool) -> None:
        disk = Path(spec.disk)
        if pool is not None:
            try:
                pool.refresh(0)
                pool.storageVolLookupByName(disk.name).delete(0)
                return
            except self.libvirt.libvirtError:
                pass
        disk.unlink(missing_ok=True)

    def ensure_network(self) -> str:
        """libvirt's ``default`` NAT network, defined, autostarted and active; "" without a network driver."""
        libvirt = self.libvirt
        try:
            net = self.conn.networkLookupByName("default")
        except libvirt.libvirtError as exc:
            if _unsupported(exc):
                return ""
            if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                raise
            net = self.conn.networkDefineXML(DEFAULT_NETWORK)
        try:
            if not net.autostart():
                net.setAutostart(1)
            if not net.isActive():
                net.create()
        except libvirt.libvirtError as exc:  # e.g. no dnsmasq: the guest's network card would have nothing behind
            raise InstallFailure(f"libvirt's default NAT network cannot start: {exc.get_error_message()}",
                                 hint="nothing was created; libvirt's NAT network needs dnsmasq (dnsmasq-base) "
                                      "and iptables: `virsh net-start default` shows the same error") from exc
        return "default"

    def ensure_mdev(self, spec: VmSpec) -> None:
        gpu = spec.gpu
        if gpu.strategy != "mdev" or (self.root / "sys/bus/mdev/devices" / str(gpu.mdev_uuid)).exists():
            return
        create = self.root / f"sys/bus/pci/devices/{gpu.gpu}/mdev_supported_types/{gpu.mdev_type}/create"
        try:
            create.write_text(f"{gpu.mdev_uuid}\n")
        except OSError as exc:
            raise InstallFailure(f"cannot create the mediated device {gpu.mdev_type} on {gpu.gpu}: "
                                 f"{exc.strerror}") from exc

    # -- the domain

    def _exists(self, name: str) -> bool:
        try:
            self.conn.lookupByName(name)
            return True
        except self.libvirt.libvirtError:
            return False

    def _undefine(self, dom) -> None:
        libvirt = self.libvirt
        try:
            if dom.isActive():
                dom.destroy()
        except libvirt.libvirtError:
            pass
        flags = libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_TPM
        try:
            dom.undefineFlags(flags)
        except libvirt.libvirtError:
            dom.undefine()  # drivers without NVRAM/TPM (test:///default)

    def dry_run(self, xml: str) -> float:
        """Define, start paused, destroy, undefine with NVRAM and TPM state. Nothing is left behind."""
        libvirt = self.libvirt
        started = time.monotonic()
        try:
            dom = self.conn.defineXML(xml)
        except libvirt.libvirtError as exc:
            raise InstallFailure(f"libvirt refused the VM definition: {exc.get_error_message()}") from exc
        try:
            dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
        except libvirt.libvirtError as exc:
            raise InstallFailure(f"the VM does not start: {exc.get_error_message()}",
                                 hint="nothing was created; check OVMF (ovmf), swtpm (swtpm, swtpm-tools) and "
                                 "that the GPU's IOMMU group can be given to the guest") from exc
        finally:
            self._undefine(dom)
        return time.monotonic() - started

    def create(self, spec: VmSpec, *, dry_run: bool = False, start: bool = False,
               host: hostfacts.HostFacts | None = None, on_step: Callable[[str], None] | None = None) -> Created:
        """Everything, in an order where bad input stops before anything is created. ``on_step`` hears each step
        as it is about to run (a front end's progress). A signal meanwhile waits until the end: an interruption
        never leaves half a VM (a definition without its disk, a paused dry run)."""
        with deferred():
            return self._create(spec, dry_run=dry_run, start=start, host=host, on_step=on_step)

    def _create(self, spec: VmSpec, *, dry_run: bool, start: bool, host: hostfacts.HostFacts | None,
                on_step: Callable[[str], None] | None) -> Created:
        tell = on_step or (lambda text: None)
        host = host or probe(self.conn, self.root)
        store = Path(spec.disk).parent
        require_store(store)
        if spec.iso and not Path(spec.iso).is_file():
            raise UserError(f"{spec.iso}: " + ("not a regular file: an installation ISO is a file"
                                               if os.path.lexists(spec.iso) else "no such installation ISO"))
        if self._exists(spec.name):
            raise VmExists(f"a VM named {spec.name} already exists", hint="choose another --name")
        xml = domain_xml(spec, host)
        result = Created(spec.name, xml)
        pool = self.ensure_pool(store)
        if host.network:
            self.ensure_network()
            result.steps.append("network default active")
        self.ensure_mdev(spec)
        tell(f"creating the disk {spec.disk}")
        created_volume = self.create_volume(spec, pool)
        result.steps.append(f"disk {spec.disk} ({'created' if created_volume else 'kept'})")
        try:
            tell("dry run: define, start paused, destroy, undefine")
            result.dry_run_seconds = self.dry_run(xml)
            result.steps.append(f"dry run passed in {result.dry_run_seconds:.1f} s")
            if dry_run:
                return result
            tell("defining the VM with autostart" + (" and starting it" if start else ""))
            dom = self.conn.defineXML(xml)
            try:
                dom.setAutostart(1)
                result.steps.append("defined, autostart on")
                if start:
                    dom.create()
                    result.steps.append("started")
            except self.libvirt.libvirtError as exc:
                self._undefine(dom)
                raise InstallFailure(f"the VM could not be set up: {exc.get_error_message()}") from exc
        except BaseException:
            if created_volume:
                self.remove_volume(spec, pool)
            raise
        finally:
            if dry_run and created_volume:
                self.remove_volume(spec, pool)
        return result
