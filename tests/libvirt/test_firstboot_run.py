"""`phyllome-firstboot run` unattended, end to end on qemu:///embed: from the [firstboot] the installer saved in
the target, to the VM defined with autostart, /var/lib/phyllome/firstboot.json written and the marker removed;
a failure keeps the marker and names the step."""

from __future__ import annotations

import json

import pytest

from phyllome_installer.answers import FirstBoot
from tests.libvirt.test_primary_vm import _cli, _virsh, _virsh_clean, cli_root  # noqa: F401 (fixture)

pytestmark = pytest.mark.libvirt


@pytest.fixture
def machine(tmp_path):
    """An installed system's tree as the installer leaves it: the marker and the saved [firstboot]."""
    root = tmp_path / "machine"
    (root / "etc/phyllome").mkdir(parents=True)
    (root / "etc/phyllome/firstboot").write_text("installed-by=test\n")
    (tmp_path / "images").mkdir()
    return root


def _save(root, **firstboot):
    (root / "etc/phyllome/firstboot.toml").write_text(FirstBoot.model_validate(firstboot).to_toml())


def test_the_saved_firstboot_drives_an_unattended_run(cli_root, machine, tmp_path):  # noqa: F811
    uri, env, root = cli_root
    _save(machine, unattended=True, vm={"name": "desk", "os": "fedora37", "memory": "1GiB", "disk_size": "12GiB",
                                        "start": False})
    result = _cli(env, "run", "--uri", uri, "--store", str(tmp_path / "images"), "--root", str(machine))
    try:
        assert result.returncode == 0, result.stderr
        assert "desk: dry run: define, start paused, destroy, undefine" in result.stdout  # progress as it runs
        assert "first boot done; the first-boot marker is removed" in result.stdout
        assert not (machine / "etc/phyllome/firstboot").exists()
        saved = json.loads((machine / "var/lib/phyllome/firstboot.json").read_text())
        assert saved["ok"] and saved["mode"] == "unattended" and saved["error"] is None
        assert [s["name"] for s in saved["steps"]] == ["checks", "plan", "vm"]
        assert saved["vm"] == {"name": "desk", "uri": uri, "autostart": True, "started": False}
        assert "Autostart:      enable" in _virsh(uri, env, "dominfo", "desk")
    finally:
        assert _virsh_clean(uri, env, root) == ["desk"]


def test_a_failure_keeps_the_marker_and_names_the_step(cli_root, machine, tmp_path):  # noqa: F811
    uri, env, _ = cli_root
    _save(machine, vm={"name": "desk", "os": "fedora37", "iso": str(tmp_path / "missing.iso"), "memory": "1GiB"})
    result = _cli(env, "run", "--unattended", "--uri", uri, "--store", str(tmp_path / "images"),
                  "--root", str(machine))
    assert result.returncode == 1
    # The plan refuses a missing ISO, as `vm plan` does: before libvirt is asked anything.
    assert "first boot failed in step plan" in result.stderr and "missing.iso: no such file" in result.stderr
    assert "the first-boot marker is kept" in result.stderr
    assert (machine / "etc/phyllome/firstboot").exists()
    saved = json.loads((machine / "var/lib/phyllome/firstboot.json").read_text())
    assert not saved["ok"] and saved["failed_step"] == "plan" and "missing.iso" in saved["error"]
    assert _virsh(uri, env, "list", "--all", "--name").split() == []


def test_enabled_false_creates_nothing_and_finishes(cli_root, machine, tmp_path):  # noqa: F811
    uri, env, _ = cli_root
    _save(machine, enabled=False, unattended=True, vm={"os": "fedora37"})
    result = _cli(env, "run", "--uri", uri, "--store", str(tmp_path / "images"), "--root", str(machine))
    assert result.returncode == 0, result.stderr
    saved = json.loads((machine / "var/lib/phyllome/firstboot.json").read_text())
    assert saved["ok"] and saved["steps"][-1]["detail"].startswith("no VM created")
    assert _virsh(uri, env, "list", "--all", "--name").split() == []
