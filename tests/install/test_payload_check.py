"""A payload that cannot boot is refused in the check task, before anything is written (exit 2), naming what it
lacks (root tier: a real ostree repository and a real loop device)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from phyllome_installer import answers, engine
from phyllome_installer.core.errors import UserError
from phyllome_installer.core.runner import SubprocessRunner
from phyllome_installer.deploy import payload_names
from phyllome_installer.plan import build
from storage.probe import Prober
from tests.loopdev import sh

pytestmark = pytest.mark.root
MINIMAL = Path(__file__).resolve().parents[1] / "data" / "answers" / "good" / "minimal.toml"


def commit(repo: Path, tree: Path, files: dict[str, str], dirs: tuple[str, ...]) -> None:
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    for rel in dirs:
        (tree / rel).mkdir(parents=True, exist_ok=True)
    sh("ostree", f"--repo={repo}", "init", "--mode=archive")
    sh("ostree", f"--repo={repo}", "commit", "--branch=test/x86_64/broken", f"--tree=dir={tree}",
       "--owner-uid=0", "--owner-gid=0")


@pytest.mark.parametrize(("files", "dirs", "lacks"), [
    ({"usr/lib/os-release": "ID=x\n", "usr/lib/modules/6.1/vmlinuz": "k"}, ("var", "sysroot"),
     "vmlinuz with its initramfs.img"),
    ({"usr/lib/os-release": "ID=x\n", "usr/lib/modules/6.1/vmlinuz": "k", "usr/lib/modules/6.1/initramfs.img": "i"},
     ("sysroot",), "/var"),
    ({"usr/lib/modules/6.1/vmlinuz": "k", "usr/lib/modules/6.1/initramfs.img": "i"}, ("var", "sysroot"),
     "/usr/lib/os-release"),
])
def test_a_commit_that_cannot_boot_is_refused_before_writing(tmp_path, files, dirs, lacks):
    repo = tmp_path / "repo"
    commit(repo, tmp_path / "tree", files, dirs)
    image = tmp_path / "disk.img"
    sh("truncate", "-s", "12G", str(image))
    device = sh("losetup", "--find", "--show", str(image)).strip()
    try:
        text = MINIMAL.read_text().replace("/dev/vda", device).replace("/run/install/repo", str(repo))
        text = text.replace("phyllome/x86_64/stable", "test/x86_64/broken")
        config = answers.parse(text, "a.toml", redactor=None).config
        runner = SubprocessRunner()
        plan = build(config, Prober(runner, include_loop=True, only=[device]).profile(), runner,
                     sysroot=tmp_path / "sysroot", include_loop=True, can_mount=lambda fs: True)
        result = engine.run(plan)
        assert not result.ok and result.failed_task == "check" and result.exit_code == 2, result
        assert "is not a bootable ostree tree" in result.error and lacks in result.error
        assert not result.touched and image.stat().st_blocks == 0
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


BOOTABLE = {"usr/lib/os-release": "ID=x\n", "usr/lib/modules/6.1/vmlinuz": "k",
            "usr/lib/modules/6.1/initramfs.img": "i"}


@pytest.mark.parametrize(("path", "text"), [
    ("usr/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nbroken line without colons\n"),
    ("usr/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nbin:x:one:1:bin:/bin:/sbin/nologin\n"),
    ("usr/lib/group", "root:x:0:\nlibvirt:x::\n"),
    ("usr/etc/group", "root:x:0:\nwheel:x:10\n"),
])
def test_account_files_host_config_cannot_read_are_refused_before_writing(tmp_path, path, text):
    repo = tmp_path / "repo"
    commit(repo, tmp_path / "tree", {**BOOTABLE, path: text}, ("var", "sysroot"))
    with pytest.raises(UserError, match=f"line 2 of /{path} is not a .* entry.*nothing was written"):
        payload_names(SubprocessRunner(), answers.LocalPayload(kind="local", repo=str(repo),
                                                               ref="test/x86_64/broken"))
