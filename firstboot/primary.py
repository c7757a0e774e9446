"""The primary VM flow shared by ``phyllome-firstboot vm plan|create``, ``run --unattended`` and the screens:
OS (given or detected) -> osinfo profile -> host facts -> GPUs -> :class:`~firstboot.vm.VmSpec` -> libvirt."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from phyllome_installer.core.errors import InstallFailure, UserError
from phyllome_installer.core.facts import PCI_ADDRESS
from phyllome_installer.core.runner import Runner

from . import state
from .checks import Machine
from .gpu import analyse
from .host import HostFacts
from .osinfo import Catalogue, OsProfile
from .vm import Request, VmSpec, domain_xml, plan


def profile_for(catalogue: Catalogue, os_id: str | None, iso: str | None) -> OsProfile:
    if os_id:
        return catalogue.lookup(os_id)
    if not iso:
        raise UserError("give the installation ISO (--iso PATH), the OS (--os SHORTID), or both")
    return catalogue.detect(Path(iso))


def virtual_functions(machine: Machine, address: str) -> list[str]:
    """The enabled SR-IOV virtual functions of a PCI device (its ``virtfnN`` links)."""
    base = f"sys/bus/pci/devices/{address}"
    links = sorted((n for n in machine.listdir(base) if re.fullmatch(r"virtfn\d+", n)
                    and os.path.islink(machine.path(f"{base}/{n}"))), key=lambda n: int(n[6:]))
    return [name for name in (os.path.basename(os.readlink(machine.path(f"{base}/{n}"))) for n in links)
            if PCI_ADDRESS.fullmatch(name)]


@dataclass
class Planned:
    spec: VmSpec
    profile: OsProfile
    host: HostFacts

    def xml(self) -> str:
        return domain_xml(self.spec, self.host)

    def render(self) -> str:
        lines = [f"Primary VM {self.spec.name}:"]
        lines += [f"  {key:<9} {value}\n  {'':<9} ({source})" for key, value, source in self.spec.summary()]
        lines += [f"  note: {note}" for note in self.spec.notes]
        lines.append(f"  domain type {self.host.domain_type} (from the host's libvirt capabilities)")
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps({"spec": self.spec.model_dump(), "os": self.profile.to_dict(),
                           "domain_type": self.host.domain_type}, indent=2)


def build(request: Request, os_id: str | None, *, catalogue: Catalogue, host: HostFacts, machine: Machine,
          detected_from: str | None = None) -> Planned:
    """``request.gpu_address``: only that GPU is considered (chosen among several); ``detected_from``: the ISO
    ``os_id`` was detected from (in a child process, with a deadline), said as the OS's source."""
    profile = profile_for(catalogue, os_id, request.iso)
    if detected_from and os_id and not profile.fallback:
        profile = replace(profile, detected_from=detected_from)
    gpus = analyse(machine, "windows" if profile.family == "windows" else "linux")
    if request.gpu_address is not None:
        chosen = [g for g in gpus if g.address == request.gpu_address]
        if not chosen:
            raise UserError(f"the GPU {request.gpu_address} is not on this machine (it has "
                            f"{', '.join(g.address for g in gpus) or 'no GPU'}): choose it again")
        gpus = chosen
    vfs = {g.address: virtual_functions(machine, g.address) for g in gpus if g.sriov_totalvfs}
    if request.vmm == "cloud-hypervisor":
        from .vm_ch import check_ch

        check_ch(request, profile)
    return Planned(plan(request, profile, host, gpus, vfs), profile, host)


def create(planned: Planned, uri: str, runner: Runner, *, dry_run: bool, start: bool, root: Path = Path("/"),
           on_step=None, deadline: float | None = None):
    """The planned VM created (or only dry-run) through libvirt at ``uri``; connecting and the host's facts each
    within ``deadline`` s (None: :data:`~.libvirt_backend.ANSWER_DEADLINE`), else NoAnswer and nothing created."""
    from .libvirt_backend import Backend, NoAnswer, answered, connect, held, probe

    try:
        conn = connect(uri, deadline)
    except NoAnswer:
        raise  # a libvirt that does not answer, whatever the VMM: not a missing driver
    except InstallFailure as exc:
        if planned.spec.vmm != "cloud-hypervisor":
            raise
        from .vm_ch import connect_refusal

        raise connect_refusal(uri, exc) from exc
    with held(conn):
        if planned.spec.vmm == "cloud-hypervisor":
            from .vm_ch import require_ch_driver

            answered(lambda: require_ch_driver(conn, uri), "its hypervisor driver", uri, deadline, on=conn)
            host = planned.host
        else:
            host = answered(lambda: probe(conn, root), "the host's capabilities", uri, deadline, on=conn)
        return Backend(conn, runner, root=root).create(planned.spec, dry_run=dry_run, start=start, host=host,
                                                       on_step=on_step)


def host_facts(uri: str, root: Path = Path("/"), deadline: float | None = None) -> HostFacts:
    """The host's facts from libvirt at ``uri``; each of connecting and asking within ``deadline`` s (None: the
    backend's :data:`~.libvirt_backend.ANSWER_DEADLINE`), else InstallFailure."""
    from .libvirt_backend import answered, connect, held, probe

    with held(connect(uri, deadline)) as conn:
        return answered(lambda: probe(conn, root), "the host's capabilities", uri, deadline, on=conn)


def finish_first_boot(root: Path) -> bool:
    """Remove the pending marker once everything succeeded; True when there was one."""
    marker = Path(root) / state.MARKER
    if marker.exists():
        marker.unlink()
        return True
    return False

