from __future__ import annotations

from pathlib import Path

import pytest

from phyllome_installer import answers
from phyllome_installer.cli import install_main
from phyllome_installer.target import TargetError, resolve_target
from storage.probe import Disk, MachineProfile

GiB = 1 << 30
BY_ID = "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64ANS0T123456"
PROFILE = MachineProfile(cpu_vendor="intel", firmware="uefi", ram_bytes=32 * GiB, disks=[
    Disk(path="/dev/nvme0n1", name="nvme0n1", by_id=[BY_ID], model="Samsung SSD 980 1TB",
         serial="S64ANS0T123456", size=1000 * GiB, transport="nvme"),
    Disk(path="/dev/sda", name="sda", model="Samsung SSD 870", serial="S5Y1NX0R", size=500 * GiB, transport="sata"),
    Disk(path="/dev/sdb", name="sdb", model="Live USB", serial="USB1", size=32 * GiB, transport="usb",
         removable=True, flags={"boot_medium": "holds the running system (sdb1 is mounted on /run/initramfs/live)"}),
])


def storage(**kw) -> answers.Storage:
    return answers.Storage.model_validate(kw, context={"unattended": False})


def test_by_id_and_serial_consent():
    assert resolve_target(storage(disk=BY_ID, wipe="S64ANS0T123456"), PROFILE).path == "/dev/nvme0n1"
    assert resolve_target(storage(disk="/dev/nvme0n1", wipe="S64ANS0T123456"), PROFILE).name == "nvme0n1"


NVME_1 = "/dev/disk/by-id/nvme-WD_BLACK_SN850X_2TB_23211Z800123_1"
NVME_2 = "/dev/disk/by-id/nvme-Samsung_SSD_990_PRO_2TB_S6Z2NF0W123456_1"
NVMES = MachineProfile(cpu_vendor="amd", firmware="uefi", ram_bytes=32 * GiB, disks=[
    Disk(path="/dev/nvme0n1", name="nvme0n1", by_id=[NVME_1, NVME_1.removesuffix("_1")], model="WD_BLACK SN850X",
         serial="23211Z800123", size=2000 * GiB, transport="nvme"),
    Disk(path="/dev/nvme1n1", name="nvme1n1", by_id=[NVME_2, NVME_2.removesuffix("_1")], model="Samsung SSD 990",
         serial="S6Z2NF0W123456", size=2000 * GiB, transport="nvme"),
    Disk(path="/dev/sda", name="sda", by_id=["/dev/disk/by-id/usb-JMicron_Generic_0123456789AB-0:0"],
         model="Generic", serial="0123456789AB", size=500 * GiB, transport="usb"),
    Disk(path="/dev/sdb", name="sdb", by_id=["/dev/disk/by-id/usb-JMicron_Generic_0123456789AB-0:1"],
         model="Generic", serial="0123456789AB", size=500 * GiB, transport="usb"),
])


@pytest.mark.parametrize("wipe", [
    "1", "_1", "123", "S6Z2", "nvme", "n1", "0n1", "nvme0", "Samsung_SSD_990_PRO_2TB_S6Z2NF0W123456", "S6Z2NF0W",
    "23211Z800123_1", "0:0", "2TB", "*", "S6Z2NF0W12345", " s6z2nf0w123456", "/dev/nvme1",
])
def test_a_fragment_of_a_name_is_never_consent(wipe):
    """Hostile: with match rules that pick an NVMe disk, a suffix, prefix or piece of its names erases nothing."""
    config = storage(match={"transport": "nvme", "pick": "largest"}, wipe=wipe)
    with pytest.raises(TargetError) as info:
        resolve_target(config, NVMES)
    assert info.value.key == "storage.wipe"


@pytest.mark.parametrize("wipe", ["S6Z2NF0W123456", NVME_2, NVME_2.removesuffix("_1"), "/dev/nvme1n1", "nvme1n1",
                                  "nvme-Samsung_SSD_990_PRO_2TB_S6Z2NF0W123456_1"])
def test_a_whole_name_of_the_chosen_disk_is_consent(wipe):
    config = storage(match={"model": "Samsung*", "transport": "nvme"}, wipe=wipe)
    assert resolve_target(config, NVMES).path == "/dev/nvme1n1"


def test_a_serial_two_disks_share_is_no_consent_for_either():
    """Two disks in one USB enclosure often report one serial: it names neither of them."""
    with pytest.raises(TargetError, match="serial of /dev/sda and of /dev/sdb too"):
        resolve_target(storage(disk="/dev/sda", wipe="0123456789AB"), NVMES)
    assert resolve_target(storage(disk="/dev/sda", wipe="sda"), NVMES).path == "/dev/sda"
    assert resolve_target(storage(disk="/dev/sdb", wipe="usb-JMicron_Generic_0123456789AB-0:1"), NVMES).path \
        == "/dev/sdb"


def test_consent_naming_another_disk_is_refused():
    with pytest.raises(TargetError, match="does not name the chosen disk /dev/nvme0n1") as info:
        resolve_target(storage(disk="/dev/nvme0n1", wipe="S5Y1NX0R"), PROFILE)
    assert info.value.key == "storage.wipe"


def test_the_boot_medium_is_refused_with_its_reason():
    with pytest.raises(TargetError, match="cannot be the target: holds the running system"):
        resolve_target(storage(disk="/dev/sdb", wipe="USB1"), PROFILE)


def test_unknown_disk_lists_the_known_ones():
    with pytest.raises(TargetError, match="no disk /dev/vdz on this machine .disks: /dev/nvme0n1, /dev/sda, /dev/sdb"):
        resolve_target(storage(disk="/dev/vdz", wipe="vdz"), PROFILE)


@pytest.mark.parametrize(("rules", "expected"), [
    ({"model": "Samsung*", "pick": "largest"}, "/dev/nvme0n1"),
    ({"model": "Samsung*", "pick": "smallest"}, "/dev/sda"),
    ({"transport": "sata"}, "/dev/sda"),
    ({"min_size": "600GiB"}, "/dev/nvme0n1"),
    ({"max_size": "100GiB", "pick": "largest"}, None),  # only the boot medium is that small
    ({"model": "Samsung*"}, None),  # pick = only, two match
])
def test_match_rules(rules, expected):
    config = storage(match=rules, wipe="matched")
    if expected is None:
        with pytest.raises(TargetError):
            resolve_target(config, PROFILE)
    else:
        assert resolve_target(config, PROFILE).path == expected


def test_validate_with_a_machine_profile(tmp_path, capsys):
    profile = tmp_path / "machine.json"
    profile.write_text(PROFILE.model_dump_json())
    good = tmp_path / "good.toml"
    good.write_text((Path(__file__).parents[1] / "data/answers/good/reference.toml").read_text())
    assert install_main(["validate", str(good), "--machine", str(profile), "--log", str(tmp_path / "l")]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace(BY_ID, "/dev/sdb").replace('wipe = "S64ANS0T123456"', 'wipe = "sdb"'))
    assert install_main(["validate", str(bad), "--machine", str(profile), "--log", str(tmp_path / "l")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5:1: storage.disk: /dev/sdb cannot be the target: holds the running system" in err


def test_a_broken_profile_is_a_clear_error(tmp_path, capsys):
    profile = tmp_path / "machine.json"
    profile.write_text("{not json")
    good = Path(__file__).parents[1] / "data/answers/good/minimal.toml"
    assert install_main(["validate", str(good), "--machine", str(profile), "--log", str(tmp_path / "l")]) == 2
    assert "is not a machine profile" in capsys.readouterr().err


def test_the_tui_plans_without_wipe_consent_an_answer_file_does_not(tmp_path):
    from phyllome_installer.core.runner import RecordingRunner
    from phyllome_installer.frontend import Installer

    data = {"version": 1, "storage": {"disk": "/dev/sda", "encryption": {"enabled": False}},
            "payload": {"kind": "local", "repo": "/run/install/repo", "ref": "phyllome/x86_64/stable"},
            "users": [{"name": "admin", "password": "a long password"}]}
    config = answers.validate_data(data, unattended=False, redactor=None).config
    tui = Installer(RecordingRunner(), unattended=False)  # consent is the summary screen's typed confirmation
    assert tui.plan(config, PROFILE).context.disk.path == "/dev/sda"
    with pytest.raises(TargetError, match="does not name the chosen disk"):
        Installer(RecordingRunner()).plan(config, PROFILE)  # unattended: wipe must name it


def test_the_hostname_resolves_through_etc_hosts():
    from phyllome_installer.hostconfig import hosts_text

    payload = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost\n127.0.1.1\told-name\n"
    text = hosts_text(payload, "desk.example.org")
    assert text.splitlines() == ["127.0.0.1\tlocalhost", "127.0.1.1\tdesk.example.org desk",
                                 "::1\t\tlocalhost ip6-localhost"]
    assert hosts_text("", "desk").splitlines() == ["127.0.0.1\tlocalhost", "127.0.1.1\tdesk"]
    assert hosts_text(text, "desk.example.org") == text  # a second run changes nothing
