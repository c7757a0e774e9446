"""payload/build.py's pure parts, on a small fake root: the ostree layout and the cache keys (no mmdebstrap)."""

from __future__ import annotations

import os
from pathlib import Path

from payload import build


def fake_root(root: Path) -> Path:
    kver = "6.1.0-99-amd64"
    for rel in ("boot", f"usr/lib/modules/{kver}", "etc/apt/apt.conf.d", "var/lib/dpkg/info", "var/cache/apt",
                "var/log", "home", "root", "opt", "srv", "mnt", "media", "usr/local/bin", "tmp", "run", "dev",
                "usr/lib/tmpfiles.d", "usr/bin"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    (root / f"boot/vmlinuz-{kver}").write_text("kernel")
    (root / f"boot/config-{kver}").write_text("config")
    (root / f"usr/lib/modules/{kver}/initramfs.img").write_text("initramfs")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "var/lib/dpkg/status").write_text("Package: x\n")
    (root / "var/cache/apt/pkgcache.bin").write_text("cache")
    (root / "var/lib/dpkg/alt").symlink_to("info")
    (root / "root/.profile").write_text("# profile\n")
    (root / "vmlinuz").symlink_to(f"boot/vmlinuz-{kver}")
    return root


def test_the_ostree_layout(tmp_path):
    root = fake_root(tmp_path / "root")
    kver = build.to_ostree_layout(root)
    assert kver == "6.1.0-99-amd64"
    modules = root / "usr/lib/modules" / kver
    assert (modules / "vmlinuz").read_text() == "kernel" and (modules / "initramfs.img").exists()
    assert (modules / "config").exists() and list((root / "boot").iterdir()) == []
    assert not (root / "etc").exists() and (root / "usr/etc/passwd").exists()
    assert (root / "usr/etc/machine-id").read_text() == ""  # systemd makes one at first boot
    assert list((root / "var").iterdir()) == [] and list((root / "dev").iterdir()) == []
    assert (root / "sysroot").is_dir() and os.readlink(root / "ostree") == "sysroot/ostree"
    for link, target in build.VAR_LINKS.items():
        assert os.readlink(root / link) == target, link
    assert not (root / "vmlinuz").is_symlink()
    assert (root / build.VERSION_FILE).read_text() == "1\n"
    assert oct((root / "tmp").stat().st_mode & 0o7777) == "0o1777"


def test_var_is_recreated_by_tmpfiles(tmp_path):
    root = fake_root(tmp_path / "root")
    build.to_ostree_layout(root)
    conf = (root / "usr/lib/tmpfiles.d/phyllome-var.conf").read_text().splitlines()
    assert f"d /var/lib/dpkg 0755 {os.getuid()} {os.getgid()} -" in conf
    assert "C /var/lib/dpkg/status - - - - /usr/share/factory/var/lib/dpkg/status" in conf
    assert (root / "usr/share/factory/var/lib/dpkg/status").read_text() == "Package: x\n"
    assert "L /var/lib/dpkg/alt - - - - info" in conf
    assert not any("/var/cache/apt" in line or "/var/log" in line for line in conf)  # caches and logs are not kept
    assert "d /var/roothome 0700 root root -" in conf and "d /var/home 0755 root root -" in conf


def test_special_files_are_refused(tmp_path):
    root = fake_root(tmp_path / "root")
    os.mkfifo(root / "usr/bin/fifo")
    try:
        build.to_ostree_layout(root)
    except RuntimeError as error:
        assert "usr/bin/fifo" in str(error)
    else:
        raise AssertionError("a FIFO in the root was committed")


def test_keys_follow_their_inputs():
    assert build.cache_key() == build.cache_key()
    base, project = build.cache_key().split("-")
    assert base == build.base_key() and project == build.project_key()
    assert build._digest([Path(build.__file__)], "a") != build._digest([Path(build.__file__)], "b")
    assert any(p.name == "plan.py" for p in build.project_files())
    assert not any("__pycache__" in p.parts for p in build.project_files())


def test_packages_list():
    names = build.packages()
    assert "linux-image-amd64" in names and "ostree-boot" in names and "dracut" in names
    assert not any(" " in n or n.startswith("#") for n in names)
    assert not any("cloud" in n for n in names)
