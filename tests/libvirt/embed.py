"""libvirt without a daemon for the tests: ``qemu:///embed?root=DIR``, and everything it leaves, cleaned up.

DIR/etc/qemu.conf runs QEMU and swtpm as root without a security driver, and with ``stdio_handler = "file"``
(no virtlogd). swtpm_setup and swtpm_localca read their configuration from ``$XDG_CONFIG_HOME``: ours points
the local CA's state into DIR, so TPM setup never touches the system's /var/lib/swtpm-localca.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def short_root(prefix: str) -> Iterator[Path]:
    """A root below /tmp with a short name: libvirt puts UNIX sockets below it (at most 107 bytes a path)."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def prepare(root: Path) -> tuple[str, dict[str, str]]:
    """The URI of an embedded driver below ``root`` and the environment its swtpm needs (as the sandbox sets it)."""
    from firstboot.sandbox import embedded_libvirt

    return embedded_libvirt(root)


def qemu_pids(root: Path) -> list[int]:
    """QEMU and swtpm processes started for this embedded root (their command line names a path below it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(root) in cmdline and ("qemu-system" in cmdline or "swtpm" in cmdline):
            pids.append(int(entry.name))
    return pids


def clean(conn, root: Path) -> list[str]:
    """Destroy and undefine every domain (with NVRAM and TPM state), kill stray processes; names what was left."""
    import libvirt

    left = []
    for dom in conn.listAllDomains():
        left.append(dom.name())
        with contextlib.suppress(libvirt.libvirtError):
            if dom.isActive():
                dom.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_TPM)
    deadline = time.monotonic() + 5
    while (pids := qemu_pids(root)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    return left


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
