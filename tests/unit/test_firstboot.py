"""First-boot checks and GPU strategy against saved machine trees, and against virt-host-validate here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firstboot.checks import Machine, run_checks
from firstboot.gpu import analyse
from phyllome_installer.cli import firstboot_main

MACHINES = Path(__file__).resolve().parents[1] / "data" / "machines"


def statuses(name: str) -> dict[str, str]:
    return {c.id: c.status for c in run_checks(Machine(MACHINES / name))}


def gpus(name: str, guest: str = "windows"):
    return {g.address: g for g in analyse(Machine(MACHINES / name), guest)}


def best(gpu) -> str:
    return next(s.name for s in gpu.strategies if s.available)


def test_intel_laptop_with_gvtg():
    s = statuses("intel-laptop-gvtg")
    assert s["cpu-virt"] == s["kvm"] == s["iommu-firmware"] == s["iommu-kernel"] == s["intremap"] == "PASS"
    assert s["nested"] == "PASS" and s["ovmf"] == "PASS" and s["swtpm"] == "PASS" and s["cgroups"] == "PASS"
    igpu = gpus("intel-laptop-gvtg")["0000:00:02.0"]
    assert igpu.name == "Intel Corporation CoffeeLake-H GT2 [UHD Graphics 630]"
    assert igpu.boot_vga and igpu.isolated and igpu.mdev_types == ["i915-GVTg_V5_4", "i915-GVTg_V5_8"]
    assert best(igpu) == "mdev"  # the only GPU: share it rather than blind the host
    vfio = next(x for x in igpu.strategies if x.name == "vfio-pci")
    assert "host console blind" in vfio.reason


def test_amd_desktop_dgpu_alone_with_its_audio_function():
    s = statuses("amd-desktop-isolated-dgpu")
    assert s["iommu-firmware"] == s["iommu-kernel"] == s["intremap"] == "PASS"
    dgpu = gpus("amd-desktop-isolated-dgpu")["0000:0a:00.0"]
    assert dgpu.isolated and dgpu.blockers == [] and dgpu.group_members == ["0000:0a:00.0", "0000:0a:00.1"]
    assert best(dgpu) == "vfio-pci" and not dgpu.boot_vga
    windows_3d = next(x for x in dgpu.strategies if x.name == "virtio-gpu-3d")
    assert not windows_3d.available and "no 3D" in windows_3d.reason
    igpu_linux = gpus("amd-desktop-isolated-dgpu", "linux")["0000:10:00.0"]
    assert best(igpu_linux) == "virtio-gpu-3d" and igpu_linux.virgl


def test_dgpu_sharing_its_group_with_a_usb_controller_names_the_blocker():
    gpu = gpus("dgpu-shares-group-with-usb")["0000:01:00.0"]
    assert not gpu.isolated
    assert gpu.blockers == ["0000:00:14.0 (Intel Corporation Cannon Lake PCH USB 3.1 xHCI Host Controller)"]
    vfio = next(x for x in gpu.strategies if x.name == "vfio-pci")
    assert not vfio.available and "0000:00:14.0" in vfio.reason
    assert best(gpu) == "virtio-gpu-2d"


def test_iommu_in_firmware_but_not_in_the_kernel_says_which_argument():
    checks = {c.id: c for c in run_checks(Machine(MACHINES / "iommu-firmware-not-kernel"))}
    assert checks["iommu-firmware"].status == "PASS"
    assert checks["iommu-kernel"].status == "WARN"
    assert "intel_iommu=on iommu=pt" in checks["iommu-kernel"].remedy
    gpu = gpus("iommu-firmware-not-kernel")["0000:00:02.0"]
    vfio = next(x for x in gpu.strategies if x.name == "vfio-pci")
    assert gpu.iommu_group is None and not vfio.available and vfio.reason.startswith("no IOMMU group")


def test_no_hardware_virtualization_fails_with_the_firmware_setting():
    checks = {c.id: c for c in run_checks(Machine(MACHINES / "no-virtualization"))}
    assert checks["cpu-virt"].status == "FAIL" and "VT-x" in checks["cpu-virt"].remedy
    assert checks["kvm"].status == "FAIL"
    assert checks["ram"].status == "WARN"


def test_sriov_gpu():
    gpu = gpus("sriov-gpu")["0000:00:02.0"]
    assert gpu.sriov_totalvfs == 7 and best(gpu) == "sriov-vf"


def test_cgroup_v2_has_no_devices_controller_and_that_is_fine():
    check = next(c for c in run_checks(Machine(MACHINES / "intel-laptop-gvtg")) if c.id == "cgroups")
    assert check.status == "PASS" and "devices" not in check.found


def test_check_cli_json_shape_exit_code_and_saved_profile(tmp_path, capsys):
    save = tmp_path / "hardware.json"
    code = firstboot_main(["check", "--json", "--root", str(MACHINES / "no-virtualization"), "--save", str(save),
                           "--log", str(tmp_path / "log")])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # a check FAILs
    assert set(out) == {"guest", "checks", "gpus"}
    assert set(out["checks"][0]) == {"id", "title", "status", "found", "remedy"}
    assert {"address", "name", "driver", "boot_vga", "iommu_group", "isolated", "blockers",
            "strategies"} <= set(out["gpus"][0])
    assert set(out["gpus"][0]["strategies"][0]) == {"name", "rank", "available", "reason"}
    assert json.loads(save.read_text()) == out


def test_check_cli_lines(tmp_path, capsys):
    code = firstboot_main(["check", "--root", str(MACHINES / "amd-desktop-isolated-dgpu"),
                           "--log", str(tmp_path / "log")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert re.match(r"^The processor supports hardware virtualization \(Intel VT-x or AMD-V\) +: PASS$", lines[0])
    assert any(re.match(r"^Fast virtual networking is available \(/dev/vhost-net\) +: PASS$", line) for line in lines)
    assert any(line.startswith("GPU 0000:0a:00.0: Advanced Micro Devices") for line in lines)


VHV = {  # virt-host-validate's words -> our check
    "hardware virtualization": "cpu-virt",
    "/dev/kvm": "kvm",
    "/dev/vhost-net": "vhost-net",
    "/dev/net/tun": "tun",
    "device assignment IOMMU": "iommu-firmware",
    "IOMMU is enabled by kernel": "iommu-kernel",
}


@pytest.mark.skipif(shutil.which("virt-host-validate") is None, reason="virt-host-validate is not installed")
def test_agrees_with_virt_host_validate_on_this_machine():
    out = subprocess.run(["virt-host-validate", "qemu"], capture_output=True, text=True, check=False).stdout
    theirs = {}
    for line in out.splitlines():
        match = re.match(r"\s*QEMU: Checking (.*?)\s+: (PASS|WARN|FAIL)", line)
        for words, check in VHV.items():
            if match and words in match.group(1):
                theirs[check] = match.group(2)
    ours = {c.id: c.status for c in run_checks(Machine())}
    assert len(theirs) >= 4, out
    assert {k: ours[k] for k in theirs} == theirs


def test_the_check_command_runs_on_this_machine(tmp_path):
    result = subprocess.run([sys.executable, "-c", "import sys; from phyllome_installer.cli import firstboot_main; "
                             "sys.exit(firstboot_main())", "check", "--json", "--save", str(tmp_path / "hw.json"),
                             "--log", str(tmp_path / "log")], capture_output=True, text=True, check=False)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["checks"]


def test_the_checks_split_the_kernel_command_line_as_the_kernel_does(tmp_path):
    """core/cmdline.py's split, not str.split: a quoted value is one word, and nothing after "--" is the kernel's."""
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text('root=UUID=x quiet foo="a b" intel_iommu=on -- iommu=pt\n')
    assert Machine(tmp_path).cmdline() == ["root=UUID=x", "quiet", 'foo="a b"', "intel_iommu=on"]
    (tmp_path / "proc/cmdline").write_text("ro console=\"ttyS0 intremap=off\"\n")
    assert "intremap=off" not in Machine(tmp_path).cmdline()
