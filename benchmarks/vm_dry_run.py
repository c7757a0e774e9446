"""P5: the Windows 11 dry run (define, start paused with Secure Boot and a TPM, destroy, undefine) on libvirt's
embedded QEMU driver, as the first boot runs it (firstboot/libvirt_backend.py ``Backend.dry_run``), against the same
four steps by ``virsh -t`` on the same domain XML and the same embedded root.

The XML is the product's (``phyllome-firstboot vm plan --xml``): its domain type is what the product's KVM probe
decides, so ``qemu`` (TCG) on a machine whose /dev/kvm cannot run a vCPU. Both sides are fresh processes that open
the connection first; only the four steps are timed (the product's own clock around them; virsh's ``-t`` per
command), and the runs take turns.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmarks.rows import Row, spread

BIN = Path(sys.executable).parent
TARGET = 1.2

PRODUCT = """
import sys
from pathlib import Path
from firstboot.libvirt_backend import Backend, connect
from phyllome_installer.core.runner import SubprocessRunner
conn = connect(sys.argv[1])
print(Backend(conn, SubprocessRunner()).dry_run(Path(sys.argv[2]).read_text()))
conn.close()
"""


def product_run(uri: str, xml: Path, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", PRODUCT, uri, str(xml)], capture_output=True, text=True, env=env,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the product's dry run failed: {out.stderr[-2000:]}")
    return float(out.stdout.split()[-1])


def virsh_run(uri: str, xml: Path, name: str, env: dict[str, str]) -> float:
    """define, start --paused, destroy, undefine --nvram --tpm in one virsh session; the sum of virsh's timings."""
    script = f"define {xml}; start --paused {name}; destroy {name}; undefine --nvram --tpm {name}"
    out = subprocess.run(["virsh", "-t", "-c", uri, script], capture_output=True, text=True, env=env, check=True)
    times = [float(t) for t in re.findall(r"\(Time: ([0-9.]+) ms\)", out.stdout)]
    if len(times) != 4:
        raise RuntimeError(f"virsh: expected 4 timed commands, got {out.stdout}{out.stderr}")
    return sum(times) / 1000


def disks_of(xml: str) -> list[tuple[Path, str]]:
    """The disk images the domain opens (file sources of type disk) and their formats."""
    found = []
    for disk in ET.fromstring(xml).iter("disk"):
        source, driver = disk.find("source"), disk.find("driver")
        if disk.get("device") == "disk" and source is not None and source.get("file"):
            found.append((Path(source.get("file")), driver.get("type", "raw") if driver is not None else "raw"))
    return found


def rows(runs: int = 3) -> list[Row]:
    from tests.libvirt import embed

    with embed.short_root("pvb-") as root:
        uri, extra = embed.prepare(root)
        env = dict(os.environ, **extra)
        store = root / "images"
        store.mkdir()
        try:
            xml = subprocess.run([str(BIN / "phyllome-firstboot"), "vm", "plan", "--os", "win11", "--memory", "4GiB",
                                  "--uri", uri, "--store", str(store), "--xml", "--log", "/dev/null"],
                                 capture_output=True, text=True, env=env, check=True).stdout
            domain = ET.fromstring(xml)
            name, kind = domain.findtext("name"), domain.get("type")
            for path, fmt in disks_of(xml):
                subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), "64G"], check=True)
            xml_file = root / "win11.xml"
            xml_file.write_text(xml)
            product_run(uri, xml_file, env)  # warms libvirt's capabilities cache, as a running daemon's would be
            ours, theirs = [], []
            for _ in range(runs):
                ours.append(product_run(uri, xml_file, env))
                theirs.append(virsh_run(uri, xml_file, name, env))
        finally:
            for pid in embed.qemu_pids(root):
                os.kill(pid, 9)
    o, t = statistics.median(ours), statistics.median(theirs)
    return [Row(f"P5 Windows 11 dry run, embedded driver, domain type {kind}", spread(ours),
                f"virsh -t, same XML and root: {spread(theirs)}", o / t, TARGET)]


if __name__ == "__main__":
    from benchmarks.compass import text_table

    print(text_table(rows(int(sys.argv[1]) if len(sys.argv) > 1 else 3)))
