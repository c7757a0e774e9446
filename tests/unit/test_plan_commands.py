"""The exact commands and writes of every task, for a fixed answer file and machine, as Anaconda's rpm-ostree
task tests do: CI without root checks what an install would run. The plan is the install's own code run with
a printing runner (``InstallPlan.dry_run``), so these are the commands the real install runs.

After a deliberate change: ``PHYLLOME_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_plan_commands.py``, then
read the diff of tests/data/plan/ before committing it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from phyllome_installer import answers
from phyllome_installer.core.runner import DryRunRunner
from phyllome_installer.plan import build
from storage.probe import Disk, MachineProfile

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = DATA / "plan"
SERIAL = "S64ANS0T123456"
NVME = Disk(path="/dev/nvme0n1", name="nvme0n1", model="Samsung SSD 980 1TB", serial=SERIAL, size=1000204886016,
            transport="nvme", by_id=[f"/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_{SERIAL}"],
            identity=f"serial:{SERIAL}")
MACHINE = MachineProfile(cpu_vendor="intel", firmware="uefi", ram_bytes=32 << 30, disks=[NVME])


REPO = GOLDEN / "repo"  # an ostree repository as far as the check task can tell without running ostree


def config_of(answer_file: str) -> answers.InstallConfig:
    text = (DATA / "answers" / "good" / answer_file).read_text().replace('"/run/install/repo"', f'"{REPO}"')
    config = answers.parse(text, answer_file, redactor=None).config
    assert config is not None
    return config


def rendered(answer_file: str, **options) -> str:
    config = config_of(answer_file)
    plan = build(config, MACHINE, DryRunRunner(echo=False), sysroot=Path("/mnt/phyllome-sysroot"),
                 esp_driver="kernel", can_mount=lambda fs: True, **options)
    out = []
    for task, shown in plan.dry_run():
        out.append(f"[{task.name}]")
        out += [line.replace(sys.executable, "PYTHON").replace(str(REPO), "REPO") for line in shown]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("answer_file", ["reference.toml", "every-string.toml"])
def test_every_task_runs_exactly_these_commands(answer_file):
    text = rendered(answer_file)
    golden = GOLDEN / answer_file.replace(".toml", ".txt")
    if os.environ.get("PHYLLOME_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_no_task_fails_and_nothing_is_written(tmp_path):
    config = config_of("reference.toml")
    runner = DryRunRunner(echo=False)
    plan = build(config, MACHINE, runner, sysroot=tmp_path / "sysroot", esp_driver="kernel",
                 can_mount=lambda fs: True)
    assert plan.problems() == []
    assert list(tmp_path.iterdir()) == []  # the dry run created not even the system root


def test_a_task_that_would_fail_says_so_and_the_rest_is_still_shown():
    config = config_of("reference.toml")
    plan = build(config, MACHINE, DryRunRunner(echo=False), esp_driver="kernel", can_mount=lambda fs: fs != "f2fs")
    assert plan.problems() == ["this kernel cannot mount f2fs, the chosen root filesystem"]
    assert [task.name for task, _ in plan.dry_run()][-1] == "finish"


def test_a_local_payload_with_an_upgrade_url_gets_a_remote_and_a_remote_origin():
    text = (DATA / "answers" / "good" / "reference.toml").read_text().replace('"/run/install/repo"', f'"{REPO}"')
    text = text.replace('ref = "phyllome/x86_64/stable"',
                        'ref = "phyllome/x86_64/stable"\nupgrade_url = "https://updates.example.org/repo"')
    config = answers.parse(text, "a.toml", redactor=None).config
    assert config is not None
    plan = build(config, MACHINE, DryRunRunner(echo=False), sysroot=Path("/mnt/s"), esp_driver="kernel",
                 can_mount=lambda fs: True)
    shown = {task.name: lines for task, lines in plan.dry_run()}
    assert shown["ostree-pull"] == [
        "run: ostree remote add --repo=/mnt/s/ostree/repo --force --set=gpg-verify=true phyllome "
        "https://updates.example.org/repo",
        f"run: ostree --repo=/mnt/s/ostree/repo pull-local --remote=phyllome {REPO} phyllome/x86_64/stable"]
    assert shown["ostree-deploy"][0].endswith(" phyllome:phyllome/x86_64/stable")
    assert "Upgrades: https://updates.example.org/repo (remote phyllome)" in plan.render()


def test_a_local_payload_without_an_upgrade_url_says_it_will_not_upgrade():
    plan = build(config_of("reference.toml"), MACHINE, DryRunRunner(echo=False), esp_driver="kernel",
                 can_mount=lambda fs: True)
    assert "Upgrades: none: installed from the medium, this host will not upgrade" in plan.render()


def test_the_payload_is_synced_once_after_the_deploy_and_before_anything_makes_the_disk_bootable():
    """fsync is off while the payload is pulled and deployed into the fresh filesystem; the one syncfs of root and
    /boot (and fsync back on for the installed system) comes after the last write of the deploy and before the boot
    loader, the task that makes the disk bootable."""
    lines = rendered("reference.toml").splitlines()
    off = lines.index("run: ostree config --repo=/mnt/phyllome-sysroot/ostree/repo set core.fsync false")
    on = lines.index("run: ostree config --repo=/mnt/phyllome-sysroot/ostree/repo set core.fsync true")
    syncs = [i for i, line in enumerate(lines) if line.startswith("run: sync --file-system /mnt/phyllome-sysroot")]
    pull = next(i for i, line in enumerate(lines) if " pull" in line and line.startswith("run: ostree"))
    deploy = max(i for i, line in enumerate(lines) if "ostree-boot" in line or "admin deploy" in line)
    assert off < pull < deploy < on < syncs[0] and len(syncs) == 2
    assert lines[syncs[1]].endswith("/mnt/phyllome-sysroot/boot")
    assert syncs[1] < lines.index("[bootloader]")
