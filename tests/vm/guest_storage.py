"""Runs INSIDE the test guest (Debian's kernel, F2FS available): the real layout on /dev/vda with an F2FS root,
then the fscrypt VM store on it. Writes what it saw to OUT/result.json for the host-side test to judge."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

from phyllome_installer.core.runner import SubprocessRunner
from storage import layout
from storage.apply import BlivetApplier, TargetMounts
from storage.fscrypt import Fscrypt
from storage.probe import Prober

PASSPHRASE = "guest-passphrase-1234"


def main(out: Path) -> None:
    result: dict = {}
    runner = SubprocessRunner()
    disk = Prober(runner, only=["vda"]).disks()[0]
    result["disk_flags"] = disk.flags
    plan = layout.plan(disk.path, disk.size, root_fs="f2fs")
    applied = BlivetApplier(runner).apply(plan, disk)
    dump = runner.run(["dump.f2fs", applied.devices["root"]]).stdout
    result["f2fs_features"] = next((line for line in dump.splitlines() if "superblock features" in line), "")
    result["fsck_rc"] = runner.run(["fsck.f2fs", applied.devices["root"]], check=False).returncode
    root = Path("/mnt/sysroot")
    mounts = TargetMounts(runner, root)
    mounts.mount_layout(plan, applied)
    result["mounted_types"] = [line.split()[2] for line in open("/proc/mounts") if line.startswith("/dev/vda")]
    try:
        tool = Fscrypt(runner, root / "etc" / "fscrypt.conf")
        tool.write_config()
        tool.setup(root)
        store = root / "ostree/deploy/phyllome/var/lib/libvirt/images"
        protected = tool.encrypt(store, root, PASSPHRASE)
        (store / "win11.qcow2").write_text("guest disk")
        tool.lock(store)
        names = os.listdir(store)
        result["locked_names"] = names
        try:
            (store / names[0]).read_text()
            result["locked_read"] = "readable"
        except OSError as exc:
            result["locked_read"] = errno.errorcode.get(exc.errno, str(exc.errno))
        tool.unlock(store, root, PASSPHRASE, protector=protected.protector)
        result["read_after_passphrase"] = (store / "win11.qcow2").read_text()
        tool.lock(store)
        tool.unlock(store, root, protected.recovery_code, protector=protected.recovery_protector)
        result["read_after_recovery"] = (store / "win11.qcow2").read_text()
        tool.lock(store)
        result["status_locked"] = not tool.status(store).unlocked
    finally:
        result["lazy_unmounts"] = mounts.unmount_all()
    (out / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
