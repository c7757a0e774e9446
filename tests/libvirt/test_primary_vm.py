"""The primary VM against real libvirt: the embedded QEMU driver (no daemon), QEMU under TCG here, OVMF, swtpm.

libvirt's embedded driver has no storage pool or network driver: the pool and the default network are tested on
libvirt's own test driver (test:///default), which has both.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from firstboot import kvm
from firstboot import libvirt_backend as lb
from firstboot.checks import Machine, kvm_device
from firstboot.osinfo import Catalogue
from firstboot.primary import Planned, build, create
from firstboot.vm import Request, VmSpec
from phyllome_installer.core.errors import InstallFailure, UserError
from phyllome_installer.core.runner import SubprocessRunner
from tests.libvirt import embed

pytestmark = pytest.mark.libvirt
GiB = 1 << 30
DATA = Path(__file__).resolve().parents[1] / "data"
NO_GPU = Machine(DATA / "machines/this-ci-vm")
FIRSTBOOT = Path(sys.executable).parent / "phyllome-firstboot"


@pytest.fixture(scope="module")
def catalogue():
    return Catalogue()


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "images"
    path.mkdir()
    return path


def _planned(conn, catalogue, store: Path, os_id: str, **request) -> Planned:
    host = lb.probe(conn)
    return build(Request(store=str(store), **request), os_id, catalogue=catalogue, host=host, machine=NO_GPU)


def test_the_domain_type_comes_from_the_host_capabilities(libvirt_conn, catalogue, store):
    from firstboot.host import domain_types

    host = lb.probe(libvirt_conn)
    offered = domain_types(libvirt_conn.getCapabilities())
    assert host.domain_type in offered
    # the same verdict as the hardware checks: kvm only where a guest really ran under it (the probe's firmware)
    verdict = kvm.probe_once(SubprocessRunner(), emulator=lb._emulator(libvirt_conn.getCapabilities()),
                             dev=Path("/dev/kvm")) if "kvm" in offered else None
    assert host.domain_type == ("kvm" if verdict and verdict.runs else "qemu")
    if verdict is not None:
        check = kvm_device(Machine(Path("/")))
        assert (check.status != "FAIL") == verdict.runs, check
    assert not host.network  # the embedded driver has no network driver: the guest gets user networking
    planned = _planned(libvirt_conn, catalogue, store, "fedora37", memory=GiB)
    assert f"<domain type=\"{host.domain_type}\">" in planned.xml()


def test_windows_11_dry_run_with_secure_boot_and_tpm_leaves_nothing(libvirt_conn, embedded, catalogue, store):
    _, _, root = embedded
    system_ca = sorted(os.listdir("/var/lib/swtpm-localca")) if os.path.isdir("/var/lib/swtpm-localca") else None
    planned = _planned(libvirt_conn, catalogue, store, "win11", memory=4 * GiB)
    assert planned.spec.secure_boot and planned.spec.tpm
    result = lb.Backend(libvirt_conn, SubprocessRunner()).create(planned.spec, dry_run=True)
    assert result.dry_run_seconds > 0
    assert libvirt_conn.listAllDomains() == [] and os.listdir(store) == []  # no disk, no NVRAM left
    qemu_log = (root / "log/qemu" / f"{planned.spec.name}.log").read_text()
    assert "tpm-crb" in qemu_log and "OVMF_CODE_4M.ms.fd" in qemu_log  # Secure Boot firmware, Microsoft keys
    assert "smm=on" in qemu_log
    assert (root / "swtpm-localca/issuercert.pem").is_file()  # the EK certificate came from our own local CA
    if system_ca is not None:
        assert sorted(os.listdir("/var/lib/swtpm-localca")) == system_ca


def test_a_gpu_that_cannot_be_given_away_fails_the_dry_run_and_nothing_is_left(libvirt_conn, catalogue, store):
    planned = _planned(libvirt_conn, catalogue, store, "fedora37", memory=GiB)
    gpu = planned.spec.gpu.model_copy(update={"strategy": "vfio-pci", "hostdevs": ["0000:7f:1f.7"]})
    spec = VmSpec(**(planned.spec.model_dump() | {"gpu": gpu.model_dump()}))
    with pytest.raises(InstallFailure, match="does not start|refused"):
        lb.Backend(libvirt_conn, SubprocessRunner()).create(spec)
    assert libvirt_conn.listAllDomains() == [] and os.listdir(store) == []


def test_bad_input_creates_nothing(libvirt_conn, embedded, catalogue, store, tmp_path):
    backend = lb.Backend(libvirt_conn, SubprocessRunner())
    planned = _planned(libvirt_conn, catalogue, store, "fedora37", memory=GiB, iso=str(tmp_path / "gone.iso"))
    with pytest.raises(UserError, match="no such installation ISO"):
        backend.create(planned.spec)
    missing = _planned(libvirt_conn, catalogue, tmp_path / "no-store", "fedora37", memory=GiB)
    with pytest.raises(UserError, match="does not exist"):
        backend.create(missing.spec)
    planned = _planned(libvirt_conn, catalogue, store, "fedora37", memory=GiB)
    backend.create(planned.spec)  # defined with autostart, not started
    dom = libvirt_conn.lookupByName(planned.spec.name)
    assert dom.autostart() and not dom.isActive()
    with pytest.raises(UserError, match="already exists"):
        backend.create(planned.spec)
    assert embed.clean(libvirt_conn, embedded[2]) == [planned.spec.name]  # only the one defined above


def test_pool_volume_and_default_network_on_libvirt_test_driver(tmp_path):
    import libvirt

    conn = lb.connect("test:///default")
    try:
        backend = lb.Backend(conn, SubprocessRunner())
        net = conn.networkLookupByName("default")
        net.destroy()
        net.undefine()
        assert backend.ensure_network() == "default"
        net = conn.networkLookupByName("default")
        assert net.isActive() and net.autostart()
        pool = backend.ensure_pool(tmp_path)
        assert pool.isActive() and backend.ensure_pool(tmp_path).name() == pool.name() == lb.POOL
        spec = VmSpec.model_construct(disk=str(tmp_path / "desktop.qcow2"), disk_size=GiB, disk_format="qcow2")
        assert backend.create_volume(spec, pool) and not backend.create_volume(spec, pool)
        assert pool.storageVolLookupByName("desktop.qcow2").info()[1] == GiB
        backend.remove_volume(spec, pool)
        with pytest.raises(libvirt.libvirtError):
            pool.storageVolLookupByName("desktop.qcow2")
    finally:
        conn.close()


@pytest.fixture
def ch_planned(catalogue, store) -> Planned:
    """A Cloud Hypervisor VM planned from saved libvirt capabilities, on a machine with an isolated GPU."""
    from firstboot.host import parse

    host = parse((DATA / "libvirt/capabilities.xml").read_text(), (DATA / "libvirt/domcaps-qemu-q35.xml").read_text(),
                 libvirt_version=9000000, domain_type="qemu")
    request = Request(store=str(store), vmm="cloud-hypervisor", gpu="vfio-pci", disk_format="raw")
    amd = Machine(DATA / "machines/amd-desktop-isolated-dgpu")
    return build(request, "fedora37", catalogue=catalogue, host=host, machine=amd)


def test_cloud_hypervisor_create_refuses_cleanly_without_the_ch_driver(ch_planned, store):
    with pytest.raises(InstallFailure, match="Cloud Hypervisor driver is not available"):
        create(ch_planned, "ch:///system", SubprocessRunner(), dry_run=False, start=False)
    assert os.listdir(store) == []


# ---------------------------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def cli_root():
    """A second embedded root for the CLI's own processes (one embedded driver per root at a time)."""
    with embed.short_root("pvc-") as root:
        uri, env = embed.prepare(root)
        yield uri, dict(os.environ, **env), root
        _virsh_clean(uri, dict(os.environ, **env), root)


def _virsh(uri: str, env, *argv: str) -> str:
    """This process already holds the session's embedded driver (one per process): ask virsh instead."""
    return subprocess.run(["virsh", "-q", "-c", uri, *argv], capture_output=True, text=True, env=env, timeout=120,
                          check=False).stdout


def _virsh_clean(uri: str, env, root: Path) -> list[str]:
    names = _virsh(uri, env, "list", "--all", "--name").split()
    for name in names:
        _virsh(uri, env, "destroy", name)
        _virsh(uri, env, "undefine", name, "--nvram")
    for pid in embed.qemu_pids(root):
        os.kill(pid, 9)
    return names


def _cli(env, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(FIRSTBOOT), *argv, "--log", "/dev/null"], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def test_cli_plan_and_create_dry_run(cli_root, store):
    uri, env, _ = cli_root
    common = ("--os", "win11", "--memory", "4GiB", "--uri", uri, "--store", str(store))
    plan = _cli(env, "vm", "plan", *common)
    assert plan.returncode == 0, plan.stderr
    assert "4 GiB" in plan.stdout and "(user)" in plan.stdout and "Windows 11 requires TPM 2.0" in plan.stdout
    xml = _cli(env, "vm", "plan", *common, "--xml")
    assert xml.returncode == 0 and "<tpm model=\"tpm-crb\">" in xml.stdout
    tree = store.parent / "tree"
    tree.mkdir()
    (tree / "README").write_text("stand-in")
    iso = store.parent / "fedora.iso"  # recognised by its volume id, as Fedora's own ISO
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "Fedora-WS-Live-37-1-7", "-o", str(iso), str(tree)],
                   check=True, capture_output=True)
    detected = _cli(env, "vm", "plan", "--iso", str(iso), "--uri", uri, "--store", str(store), "--xml")
    assert detected.returncode == 0, detected.stderr
    assert str(iso) in detected.stdout and "<model type=\"virtio\" />" in detected.stdout
    dry = _cli(env, "vm", "create", *common, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run passed" in dry.stdout and os.listdir(store) == []


@pytest.mark.parametrize(("argv", "message"), [
    (("--os", "win11", "--memory", "1GiB"), "minimum of 4 GiB"),
    (("--os", "win11", "--name", "bad\x01name"), "name"),
    (("--os", "Not An Id",), "not an OS short id"),
    ((), "give the installation ISO"),
    (("--os", "win11", "--gpu", "vfio-pci"), "no GPU"),
    (("--os", "win11", "--vmm", "cloud-hypervisor"), "cannot run this VM"),
    (("--os", "win11", "--gpu-address", "01:00.0"), "the GPU 0000:01:00.0 is not on this machine (it has no GPU)"),
    (("--os", "win11", "--gpu-address", "01:00.0 x"), "is not a PCI address"),
])
def test_cli_bad_input_exits_2_and_creates_nothing(cli_root, store, argv, message):
    uri, env, _ = cli_root
    result = _cli(env, "vm", "create", *argv, "--uri", uri, "--store", str(store), "--root", str(NO_GPU.root))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and os.listdir(store) == []
    assert not (Path(NO_GPU.root) / "run").exists()  # the KVM verdict is kept on the live root only, never in a tree


def test_unattended_run_creates_the_vm_from_the_answer_file(cli_root, store, tmp_path):
    uri, env, root = cli_root
    machine = tmp_path / "machine"
    (machine / "etc/phyllome").mkdir(parents=True)
    (machine / "etc/phyllome/firstboot").write_text("")
    answers = tmp_path / "answers.toml"
    answers.write_text((DATA / "answers/good/minimal.toml").read_text() + '\n[firstboot.vm]\nname = "desk"\n'
                       'os = "fedora37"\nmemory = "1GiB"\ndisk_size = "12GiB"\nstart = false\n')
    result = _cli(env, "run", "--unattended", "--answers", str(answers), "--uri", uri, "--store", str(store),
                  "--root", str(machine))
    assert result.returncode == 0, result.stderr
    assert "defined with autostart" in result.stdout
    assert not (machine / "etc/phyllome/firstboot").exists()  # the first boot is done
    assert "hardware virtualization" in result.stdout and (machine / "var/lib/phyllome/hardware.json").is_file()
    try:
        info = _virsh(uri, env, "dominfo", "desk")
        assert "Autostart:      enable" in info and "Max memory:     1048576 KiB" in info, info
        assert (store / "desk.qcow2").is_file()
    finally:
        assert _virsh_clean(uri, env, root) == ["desk"]


def test_unattended_run_resumes_when_the_vm_exists_already(cli_root, store, tmp_path):
    """A first boot that defined the VM and stopped before removing the marker (power cut) is done next time."""
    uri, env, root = cli_root
    machine = tmp_path / "machine"
    (machine / "etc/phyllome").mkdir(parents=True)
    answers = tmp_path / "answers.toml"
    answers.write_text((DATA / "answers/good/minimal.toml").read_text() + '\n[firstboot.vm]\nname = "again"\n'
                       'os = "fedora37"\nmemory = "1GiB"\ndisk_size = "12GiB"\nstart = false\n')
    try:
        for _ in range(2):
            (machine / "etc/phyllome/firstboot").write_text("")
            result = _cli(env, "run", "--unattended", "--answers", str(answers), "--uri", uri, "--store",
                          str(store), "--root", str(machine))
            assert result.returncode == 0, result.stderr
            assert not (machine / "etc/phyllome/firstboot").exists()
        assert "exists already" in result.stdout
    finally:
        assert _virsh_clean(uri, env, root) == ["again"]


def test_sigterm_during_the_dry_run_leaves_nothing_defined(cli_root, store):
    uri, env, root = cli_root
    proc = subprocess.Popen([str(FIRSTBOOT), "vm", "create", "--os", "win11", "--dry-run", "--uri", uri, "--store",
                             str(store), "--log", "/dev/null"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.monotonic() + 120
    while not embed.qemu_pids(root) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the paused guest of the dry run is up
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), err
    assert _virsh(uri, env, "list", "--all", "--name").split() == []
    assert embed.qemu_pids(root) == [] and os.listdir(store) == []


@pytest.fixture
def silent_daemon(tmp_path):
    """A libvirtd socket that accepts connections and never answers: a daemon stuck on its side."""
    path = tmp_path / "libvirt-sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    accepted = []
    stop = False

    def accept() -> None:
        while not stop:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"qemu+unix:///system?socket={path}", accepted
    stop = True
    for conn in accepted:  # the abandoned calls get their end of file and finish
        conn.close()
    server.close()


def test_a_libvirt_that_never_answers_is_a_failure_not_a_hang(silent_daemon, tmp_path):
    """Connecting and asking for the host's facts each have a deadline: the first boot says libvirt did not answer
    (and where to look) instead of waiting forever on its screen. A real libvirt client against a socket that
    accepts and stays silent."""
    from firstboot.primary import host_facts

    uri, accepted = silent_daemon
    with pytest.raises(InstallFailure) as caught:
        host_facts(uri, tmp_path, deadline=1)
    assert accepted, "the client never reached the socket: the deadline proved nothing"
    assert "did not answer within 1 s (opening the connection)" in str(caught.value)
    assert "journalctl -u libvirtd" in caught.value.hint


def test_a_libvirt_that_never_answers_is_not_called_a_missing_driver(silent_daemon, ch_planned, store):
    """Creating a Cloud Hypervisor VM: a libvirt that does not answer is said as such (with where to look), not
    turned into "the Cloud Hypervisor driver is not available"; nothing is created."""
    uri, _ = silent_daemon
    with pytest.raises(lb.NoAnswer, match="did not answer within 1 s"):
        create(ch_planned, uri, SubprocessRunner(), dry_run=False, start=False, deadline=1)
    assert os.listdir(store) == []


def test_a_connection_still_in_use_by_a_call_is_never_closed_under_it():
    """A call past its deadline raises NoAnswer, and one whose wait is interrupted (a signal's exception) goes on in
    its thread: either way its connection stays open (closing it under the call would free what the call reads).
    A call that ended, answered or failed, has its connection closed."""
    closed = []

    class Conn:
        def close(self):
            closed.append(self)

    def refuse():
        raise InstallFailure("refused")

    class Interrupt(Exception):
        pass

    def interrupt(*_):
        raise Interrupt

    release = threading.Event()
    unanswered = Conn()
    with pytest.raises(lb.NoAnswer), lb.held(unanswered) as conn:
        lb.answered(release.wait, "waiting", "test:///x", deadline=0.2, on=conn)
    interrupted = Conn()
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupt), lb.held(interrupted) as conn:
            lb.answered(release.wait, "waiting", "test:///x", deadline=30, on=conn)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert closed == []
    release.set()  # both calls return now, in their threads: nothing closes their connections after the fact
    refused, fine = Conn(), Conn()
    with pytest.raises(InstallFailure), lb.held(refused) as conn:
        lb.answered(refuse, "refusing", "test:///x", on=conn)
    with lb.held(fine) as conn:
        assert lb.answered(lambda: 42, "answering", "test:///x", on=conn) == 42
    assert closed == [refused, fine]
