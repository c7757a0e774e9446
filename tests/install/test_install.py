"""Whole installs on loop devices, verified with the real tools (root tier)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from phyllome_installer import answers, engine
from phyllome_installer.core.progress import TaskFailed
from phyllome_installer.core.runner import RecordingRunner, SubprocessRunner
from phyllome_installer.core.sinks import ListSink
from phyllome_installer.plan import build
from phyllome_installer.sandbox import REF, Sandbox, for_sandbox
from storage.probe import Prober
from tests.loopdev import loop_image, mounted, sh

pytestmark = pytest.mark.root
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "answers" / "good" / "reference.toml"


def canary_answers(tmp_path: Path) -> tuple[Path, str, str]:
    passphrase, password = f"canary-pass-{uuid.uuid4().hex}", f"canary-pw-{uuid.uuid4().hex}"
    text = REFERENCE.read_text().replace("correct horse battery staple", passphrase)
    text = text.replace("a long enough password", password)
    path = tmp_path / "answers.toml"
    path.write_text(text)
    return path, passphrase, password


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phyllome_installer.cli", *args], capture_output=True, text=True,
                          check=False, timeout=600)


class ProcessSampler(threading.Thread):
    """Samples every process's command line while an install runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.seen: set[str] = set()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    self.seen.add(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    pass


def test_unattended_sandbox_install_is_real_and_leaks_no_secret(tmp_path):
    answers_file, passphrase, password = canary_answers(tmp_path)
    base, log = tmp_path / "sandbox", tmp_path / "install.log"
    dry = cli("install", "--sandbox", "--sandbox-dir", str(base), "--answers", str(answers_file), "--dry-run",
              "--log", str(log))
    assert dry.returncode == 0 and "[10/10] finish" in dry.stdout
    assert not (base / "disk.img").exists()  # a dry run touches nothing
    sampler = ProcessSampler()
    sampler.start()
    try:
        run = cli("install", "--sandbox", "--sandbox-dir", str(base), "--answers", str(answers_file),
                  "--log", str(log))
    finally:
        sampler.stop.set()
        sampler.join()
    assert run.returncode == 0, run.stderr[-3000:]
    code = re.search(r"Recovery code for /var/lib/libvirt/images: (\S+)", run.stdout).group(1)
    assert len(sampler.seen) > 20  # the sampler did see the install's commands
    for secret in (passphrase, password, code):
        assert secret not in log.read_text() and secret not in dry.stdout + dry.stderr + run.stderr
        assert not [c for c in sampler.seen if secret in c]
    assert sh("losetup", "-j", str(base / "disk.img")) == ""  # the install detached its loop device

    with loop_image(base / "disk.img", "16G") as device:  # re-attach the installed image and look at it
        sh("partx", "-u", device)
        table = json.loads(sh("sfdisk", "-J", device))["partitiontable"]
        assert [p["type"] for p in table["partitions"]] == ["C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                                                            "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                                                            "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"]
        root_uuid = sh("blkid", "-s", "UUID", "-o", "value", device + "p3").strip()
        assert sh("blkid", "-s", "TYPE", "-o", "value", device + "p3").strip() == "ext4"  # no F2FS here
        with mounted(device + "p3", tmp_path / "root") as root, mounted(device + "p2", root / "boot"):
            assert "phyllome" in sh("ostree", "admin", "status", f"--sysroot={root}")
            # fsync was off only while the payload was written: the installed system's upgrades fsync again
            assert sh("ostree", "config", f"--repo={root}/ostree/repo", "get", "core.fsync").strip() == "true"
            entries = list((root / "boot/loader/entries").glob("*.conf"))
            options = next(line for line in entries[0].read_text().splitlines() if line.startswith("options "))
            assert f"root=UUID={root_uuid}" in options.split() and "iommu=pt" in options.split()
            deployment = next((root / "ostree/deploy/phyllome/deploy").glob("*.0"))
            etc = deployment / "etc"
            assert (etc / "hostname").read_text() == "phyllome\n"
            assert (etc / "vconsole.conf").read_text() == "KEYMAP=us\n"
            assert (etc / "locale.conf").read_text() == 'LANG="en_US.UTF-8"\n'
            assert (etc / "localtime").readlink() == Path("../usr/share/zoneinfo/Europe/Paris")
            assert "admin:x:1000:1000::/var/home/admin:/bin/bash" in (etc / "passwd").read_text()
            shadow = (etc / "shadow").read_text()
            assert re.search(r"^admin:\$6\$[^:]+:", shadow, re.MULTILINE)
            assert (etc / "phyllome/firstboot").exists()
            assert "[firstboot]\nenabled = true" in (etc / "phyllome/firstboot.toml").read_text()  # saved, no secret
            var = root / "ostree/deploy/phyllome/var"
            keys = var / "home/admin/.ssh/authorized_keys"
            assert keys.stat().st_mode & 0o777 == 0o600 and keys.stat().st_uid == 1000
            assert (var / "log/phyllome/install.log").read_text().startswith(log.read_text()[:200])
            conf = etc / "fscrypt.conf"
            status = subprocess.run(["fscrypt", "status", str(var / "lib/libvirt/images")], capture_output=True,
                                    text=True, check=False, env={"FSCRYPT_CONF": str(conf), "PATH": "/usr/bin:/bin"})
            assert "Unlocked: No" in status.stdout, status.stdout + status.stderr
            hits = subprocess.run(["grep", "-r", "-l", "-a", "-F", "-e", passphrase, "-e", password, "-e", code,
                                   str(root)], capture_output=True, text=True, check=False)
            assert hits.stdout == "", f"secrets found in {hits.stdout}"


# (task, the command prefix that fails in it, what the error says)
INJECTED = "exit code 1"
FAULTS = [
    ("check", ("ostree", "--repo={repo}", "rev-parse"), "is not in the repository"),
    ("partition", ("sfdisk", "--quiet", "--part-type"), INJECTED),
    ("mount", ("mount",), INJECTED),
    ("ostree-init", ("ostree", "admin", "init-fs"), INJECTED),
    ("ostree-pull", ("ostree", "--repo={sysroot}/ostree/repo", "pull-local"), INJECTED),
    ("ostree-deploy", ("ostree", "admin", "deploy"), INJECTED),
    # the one sync of the payload (fsync is off during pull and deploy) fails: the install stops before the boot loader
    ("ostree-deploy", ("sync", "--file-system"), INJECTED),
    ("host-config", ("useradd",), INJECTED),
    ("fscrypt", ("fscrypt", "setup"), INJECTED),
    ("bootloader", ("ostree", "admin", "status"), INJECTED),
    ("finish", ("fscrypt", "lock"), INJECTED),
]


def mounts_under(path: Path) -> list[str]:
    return [line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(str(path))]


def test_every_task_fails_cleanly_and_a_rerun_succeeds(tmp_path):
    answers_file, _, _ = canary_answers(tmp_path)
    config = answers.load_config(answers_file)
    sandbox = Sandbox(tmp_path / "sandbox")
    sandbox.ensure_payload(SubprocessRunner())
    sysroot = tmp_path / "sysroot"
    with loop_image(tmp_path / "target.img", "12G") as device:
        def attempt(fault):
            runner = RecordingRunner(delegate=SubprocessRunner())
            if fault:
                prefix = tuple(part.format(repo=sandbox.repo, sysroot=sysroot) for part in fault)
                runner.fail(prefix, times=1)
            machine = Prober(runner, include_loop=True, only=[device]).profile()
            sink = ListSink()
            plan = build(for_sandbox(config, sandbox, device), machine, runner, sysroot=sysroot, sandbox=True,
                         include_loop=True, sink=sink)
            return engine.run(plan), sink

        for task, fault, message in FAULTS:
            result, sink = attempt(fault)
            assert not result.ok and result.failed_task == task, (task, result)
            assert message in result.error, (task, result.error)
            assert [e.task for e in sink.events if isinstance(e, TaskFailed)] == [task]
            assert mounts_under(sysroot) == [], f"{task} left mounts behind"
        result, _ = attempt(None)
        assert result.ok, result
        assert mounts_under(sysroot) == []
    assert str(tmp_path) not in sh("losetup", "-a")  # every loop device of this test was released
    assert REF in sh("ostree", f"--repo={sandbox.repo}", "refs")


def test_grub_efi_install_on_a_loop_disk(tmp_path):
    """The non-sandbox path: the deployed tree ships no bootupd, so GRUB for EFI from this system goes into the ESP."""
    answers_file, _, _ = canary_answers(tmp_path)
    sandbox = Sandbox(tmp_path / "sandbox")
    sandbox.ensure_payload(SubprocessRunner())
    with loop_image(tmp_path / "target.img", "12G") as device:
        config = for_sandbox(answers.load_config(answers_file), sandbox, device)  # a loop disk, the demo payload
        runner = SubprocessRunner()
        plan = build(config, Prober(runner, include_loop=True, only=[device]).profile(), runner,
                     sysroot=tmp_path / "sysroot", include_loop=True)
        result = engine.run(plan)
        assert result.ok, result
        assert mounts_under(tmp_path / "sysroot") == []
        esp = sh("mdir", "-b", "-i", device + "p1", "::/EFI/BOOT")
        assert "::/EFI/BOOT/BOOTX64.EFI" in esp
        sh("fsck.vfat", "-n", device + "p1")
        boot_uuid = sh("blkid", "-s", "UUID", "-o", "value", device + "p2").strip()
        root_uuid = sh("blkid", "-s", "UUID", "-o", "value", device + "p3").strip()
        with mounted(device + "p2", tmp_path / "boot") as boot:
            stub = (boot / "grub" / "grub.cfg").read_text()  # written once: finds /boot, loads the menu there
            assert f"search --no-floppy --fs-uuid --set=root {boot_uuid}" in stub
            assert "configfile ($root)/loader/grub.cfg" in stub
            menu = (boot / "loader" / "grub.cfg").read_text()  # beside the BLS entries, in loader.N/
            assert (boot / "loader").is_symlink() and (boot / "loader" / "entries").is_dir()
            assert f"root=UUID={root_uuid}" in menu and "linux /ostree/phyllome-" in menu
            assert (boot / "grub" / "x86_64-efi").is_dir()
        with mounted(device + "p3", tmp_path / "root") as root:
            # The demo payload ships no grub-mkconfig: ostree is not told to rewrite the menu it cannot write.
            config = (root / "ostree/repo/config").read_text()
            assert "bootloader=none" in config.replace(" ", ""), config


def test_a_4kn_disk_installs_and_every_partition_passes_fsck(tmp_path):
    """A disk with 4096-byte logical sectors (losetup --sector-size 4096): blivet, sfdisk and the checks count in
    its sectors, the backup GPT fits, and every filesystem is clean."""
    answers_file, _, _ = canary_answers(tmp_path)
    sandbox = Sandbox(tmp_path / "sandbox")
    sandbox.ensure_payload(SubprocessRunner())
    with loop_image(tmp_path / "4kn.img", "12G", sector_size=4096) as device:
        assert sh("blockdev", "--getss", device).strip() == "4096"
        config = for_sandbox(answers.load_config(answers_file), sandbox, device)
        runner = SubprocessRunner()
        plan = build(config, Prober(runner, include_loop=True, only=[device]).profile(), runner,
                     sysroot=tmp_path / "sysroot", include_loop=True)
        result = engine.run(plan)
        assert result.ok, result
        table = json.loads(sh("sfdisk", "-J", device))["partitiontable"]
        assert table["sectorsize"] == 4096
        assert [(p["start"] * 4096, p["size"] * 4096) for p in table["partitions"]] == \
            [(p.start, p.size) for p in plan.context.layout.partitions]
        assert "PMBR" not in subprocess.run(["sfdisk", "--verify", device], capture_output=True, text=True,
                                            check=False).stdout
        sh("fsck.vfat", "-n", device + "p1")
        sh("e2fsck", "-fn", device + "p2")
        root_fs = plan.context.layout.root_fs
        sh(*(("fsck.f2fs", device + "p3") if root_fs == "f2fs" else ("e2fsck", "-fn", device + "p3")))


def test_install_into_a_disk_image_file(tmp_path):
    """``--target-image``: the real install (GRUB for EFI, not the sandbox's none) into an image file through a loop
    device that the install attaches and releases itself."""
    sandbox = Sandbox(tmp_path / "payload")
    sandbox.ensure_payload(SubprocessRunner())
    text = REFERENCE.read_text().replace("/run/install/repo", str(sandbox.repo))
    text = text.replace("phyllome/x86_64/stable", REF).replace('root_fs = "f2fs"', 'root_fs = "ext4"')
    answers_file = tmp_path / "answers.toml"
    answers_file.write_text(text)
    image = tmp_path / "vm.img"
    run = cli("install", "--answers", str(answers_file), "--target-image", str(image), "--image-size", "12GiB",
              "--log", str(tmp_path / "install.log"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "systemctl" not in run.stderr  # the image is not this machine: no reboot
    assert sh("losetup", "-j", str(image)) == ""
    table = json.loads(sh("sfdisk", "-J", str(image)))["partitiontable"]
    assert [p["name"] for p in table["partitions"]] == ["EFI System", "boot", "root"]
    esp = f"{image}@@{table['partitions'][0]['start'] * 512}"
    assert "BOOTX64" in sh("mdir", "-i", esp, "::/EFI/BOOT")
