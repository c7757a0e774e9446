"""Runs INSIDE the test guest: a whole unattended install onto /dev/vda with an F2FS root, then checks it.

argv: OUT ANSWERS. The installer is the real command (`python -m phyllome_installer.cli install`), run as a
user would; then the guest mounts what it wrote and records the facts in OUT/result.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def sh(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)


def main(out: Path, answers: str) -> None:
    result: dict = {}
    install = sh(sys.executable, "-m", "phyllome_installer.cli", "install", "--answers", answers,
                 "--log", str(out / "install.log"))
    result["install_rc"] = install.returncode
    result["install_tail"] = (install.stdout + install.stderr)[-3000:]
    root_uuid = sh("blkid", "-s", "UUID", "-o", "value", "/dev/vda3").stdout.strip()
    dump = sh("dump.f2fs", "/dev/vda3").stdout
    result["f2fs_features"] = next((line for line in dump.splitlines() if "superblock features" in line), "")
    root, boot = Path("/mnt/check"), Path("/mnt/check/boot")
    root.mkdir(parents=True, exist_ok=True)
    sh("mount", "/dev/vda3", str(root))
    sh("mount", "/dev/vda2", str(boot))
    try:
        result["ostree_status"] = sh("ostree", "admin", "status", f"--sysroot={root}").stdout
        entries = sorted((boot / "loader" / "entries").glob("*.conf"))
        options = next((line.split()[1:] for line in entries[0].read_text().splitlines()
                        if line.startswith("options ")), []) if entries else []
        result["bls_options"] = options
        result["root_uuid"] = root_uuid
        deployment = next((root / "ostree/deploy/phyllome/deploy").glob("*.0"))
        store = root / "ostree/deploy/phyllome/var/lib/libvirt/images"
        status = sh("fscrypt", "status", str(store), env={"FSCRYPT_CONF": str(deployment / "etc/fscrypt.conf"),
                                                            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        result["fscrypt_status"] = status.stdout + status.stderr
        result["hostname"] = (deployment / "etc/hostname").read_text().strip()
    finally:
        sh("umount", str(boot))
        sh("umount", str(root))
    (out / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
