"""Two machines boot the live medium over the network (docs/fleet.md) and each installs from its own answer file.

QEMU's user network (its TFTP server hands out the fleet's iPXE script, which chains pxe/boot.ipxe over HTTP),
Debian's iPXE ROM under OVMF, the stub fleet server of tests/fleet/server.py on 127.0.0.1. Both machines boot the
same script; they differ in their MAC address and SMBIOS serial and UUID, which the initramfs puts in the answer
URL's query (matchbox's /generic selectors) over TLS pinned by public key. From inside each guest, the installer
reports its answer file's hostname and its own DMI serial in its events, which the server receives in order:

* machine A installs unattended to the end (the payload pulled over HTTP from the server) and powers off;
* machine B's file names a payload the server does not have: its install fails at the pull, and its events end
  with install-failed and the log's tail (no secret in any event). One long install for the tier, not two.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.boot.harness import StageFailed
from tests.fleet.harness import NetMachine
from tests.fleet.server import FleetServer

pytestmark = [pytest.mark.fleet, pytest.mark.root]

PASSPHRASE = "fleet passphrase 7"
PASSWORD = "fleet-password-9"
ANSWERS = """version = 1
[storage]
disk = "/dev/vda"
wipe = "/dev/vda"
root_fs = "f2fs"
[storage.encryption]
passphrase = "{passphrase}"
[payload]
kind = "url"
url = "{repo}"
ref = "phyllome/x86_64/host"
gpg_verify = false
[host]
hostname = "{hostname}"
kernel_args = ["console=ttyS0,115200"]
[[users]]
name = "admin"
password = "{password}"
[post]
action = "poweroff"
[report.machine]
serial = "{serial}"
"""
MACHINES = {"A": ("FLEET-A", "52:54:00:f1:ee:0a", "4c4c4544-0000-1000-8000-00000000000a"),
            "B": ("FLEET-B", "52:54:00:f1:ee:0b", "4c4c4544-0000-1000-8000-00000000000b")}


def blank_disk(path: Path, size: int = 16 << 30) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def wait_for(server: FleetServer, serial: str, kinds: tuple[str, ...], machine: NetMachine, timeout: float,
             stage: str) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = [e for e in server.events_of(serial) if e["event"] in kinds]
        if last:
            machine.stages.append((stage, time.monotonic() - machine._started))
            return last[-1]
        if machine.process is not None and machine.process.poll() is not None:
            break
        time.sleep(5)
    raise StageFailed(stage, f"no {'/'.join(kinds)} event from {serial}; events: "
                             f"{[e['event'] for e in server.events_of(serial)]}", machine.console)


def check_order(events: list[dict]) -> None:
    """seq 1, 2, ... with nothing dropped; install-started first; every task started before it ended."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), [e["seq"] for e in events]
    assert all(e["dropped"] == 0 for e in events)
    assert events[0]["event"] == "install-started"
    started: list[str] = []
    for event in events:
        if event["event"] == "task-started":
            started.append(event["task"])
        elif event["event"] in ("task-finished", "task-failed"):
            assert started and started[-1] == event["task"], (event, started)


def test_two_machines_boot_over_the_network_each_with_its_own_answer_file(medium, workdir):
    from payload import build as payload_build

    payload = payload_build.build()
    tftp = workdir / "tftp"
    tftp.mkdir()
    with FleetServer({"pxe": medium.pxe, "repo": payload.repo}, {}, workdir) as server:
        for name, (serial, _mac, _uuid) in MACHINES.items():
            repo = server.url("/repo" if name == "A" else "/no-such-repo")
            server.profiles[serial] = ANSWERS.format(passphrase=PASSPHRASE, password=PASSWORD, repo=repo,
                                                     hostname=f"fleet-{name.lower()}", serial=serial).encode()
        args = (f"console=tty0 console=ttyS0,115200 phyllome.answers={server.tls_url('/generic')} "
                f"phyllome.answers.pubkey={server.pin} phyllome.events={server.url('/events')} "
                "phyllome.unattended=1")
        (tftp / "fleet.ipxe").write_text(f"#!ipxe\ndhcp\nset base {server.url('/pxe/')}\n"
                                         f"set phyllome-args {args}\nchain ${{base}}boot.ipxe\n")
        machines = {name: NetMachine(blank_disk(workdir / f"{name}.img"), workdir / name, tftp=tftp,
                                     bootfile="fleet.ipxe", mac=mac, serial=serial, uuid=uuid,
                                     cpus=2 if name == "A" else 1)
                    for name, (serial, mac, uuid) in MACHINES.items()}
        a, b = machines["A"], machines["B"]
        try:
            with a, b:
                failed = wait_for(server, "FLEET-B", ("install-failed", "install-finished"), b, 2400,
                                  "B: network boot -> its install fails at the payload")
                b.stop()
                try:
                    rc = a.wait_exit(3600, "A: network boot -> unattended install -> power off")
                except StageFailed:
                    print("A's events:", [e["event"] for e in server.events_of("FLEET-A")])
                    raise
                assert rc == 0, f"QEMU ended with {rc}\n{a.console[-3000:]}"
        finally:
            print("A stages:", a.timings())
            print("B stages:", b.timings())
        events = {serial: server.events_of(serial) for serial, _, _ in MACHINES.values()}
        queries = list(server.queries)

    for name, (serial, mac, uuid) in MACHINES.items():
        # The initramfs asked for this machine's file by its identity, as matchbox's selectors read it.
        asked = [q for q in queries if q.get("serial") == serial]
        assert asked and asked[0]["mac"] == mac.replace(":", "-") and asked[0]["uuid"] == uuid, queries
        # From inside the guest: its installer read the file served for its own serial.
        started = events[serial][0]
        assert started["event"] == "install-started" and started["hostname"] == f"fleet-{name.lower()}", started
        assert started["machine"]["serial"] == serial and started["machine"]["mac"] == mac.replace(":", "-")
        check_order(events[serial])
    assert events["FLEET-A"][-1]["event"] == "install-finished", [e["event"] for e in events["FLEET-A"]]
    assert failed["event"] == "install-failed" and failed["task"], failed
    assert failed["log_tail"], failed
    every = json.dumps(events)
    assert PASSPHRASE not in every and PASSWORD not in every
    assert not any(e["event"] == "recovery-code" for e in events["FLEET-A"])
