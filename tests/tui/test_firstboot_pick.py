"""The OS and the GPU are picked, never typed (issue 21): the OS from osinfo's list when no ISO is given or its
detection fails, with "from: user" or "detected from the ISO" said as it is; on a machine with an iGPU and a dGPU
the person picks which one the VM gets, and the strategies offered and planned follow that GPU. Real osinfo-db,
real xorriso ISOs, the saved machine trees of tests/data/machines."""

from __future__ import annotations

import pytest

from tests.tui.test_detect_deadline import make_iso
from tests.tui.test_firstboot_flow import settle

SIZE = (80, 25)


@pytest.fixture
def picking(flow, tmp_path):
    """test_firstboot_flow's app on a saved machine tree, with ISOs made by xorriso on its ISO shelf."""
    def make(machine: str = "this-ci-vm", isos: tuple[str, ...] = ()):
        made = flow(machine=machine)
        shelf = made.session.root / "var/lib/libvirt/isos"
        shelf.mkdir(parents=True, exist_ok=True)
        for volume in isos:
            (tmp_path / volume).mkdir()
            make_iso(tmp_path / volume, volume).rename(shelf / f"{volume}.iso")
        return made
    return make


async def to(pilot, name: str):
    await settle(pilot)
    while type(pilot.app.screen).__name__ != name:
        await pilot.click("#next")
        await settle(pilot)


def said(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


def review_os(app) -> str:
    lines = said(app.screen, "#review").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("os "))
    return " ".join(lines[at:at + 2])


async def pick(pilot, selector: str, typed: str = "", downs: int = 0):
    """Open a list with Enter, type to jump (as a person does), move down, Enter."""
    pilot.app.screen.query_one(selector).focus()
    await pilot.press("enter", *typed, *(["down"] * downs if downs > 0 else ["up"] * -downs), "enter")
    await settle(pilot)


async def test_with_no_iso_the_os_is_picked_by_name_from_osinfo_and_said_to_be_the_users(picking):
    app = picking()
    async with app.run_test(size=SIZE) as pilot:
        await to(pilot, "VmScreen")
        await pilot.click("#next")
        await settle(pilot)
        assert "pick the OS" in said(app.screen, "#os-error")
        await pick(pilot, "#os", "windows 1")
        assert app.screen.query_one("#os").value == "win11"
        assert "Windows 11 (win11)" in said(app.screen.query_one("#os"), "SelectCurrent Static")
        await pilot.click("#next")
        await settle(pilot)
        assert type(app.screen).__name__ == "ReviewScreen"
        assert "win11" in review_os(app) and "from: user" in review_os(app)


async def test_a_detected_os_is_said_to_come_from_the_iso_until_the_person_picks_another(picking):
    app = picking(isos=("Fedora-WS-Live-37-1-7",))
    async with app.run_test(size=SIZE) as pilot:
        await to(pilot, "VmScreen")
        await pick(pilot, "#iso", downs=1)
        assert app.screen.query_one("#os").value == "fedora37"
        assert said(app.screen, "#os-hint") == "detected from the ISO"
        await pilot.click("#next")
        await settle(pilot)
        assert "fedora37" in review_os(app) and "from: detected from the ISO" in review_os(app)
        await pilot.press("escape")  # back to change it: the OS is now the person's choice
        await settle(pilot)
        assert said(app.screen, "#os-hint") == "detected from the ISO"  # kept across Back
        await pick(pilot, "#os", "debian")
        assert app.screen.query_one("#os").value != "fedora37" and said(app.screen, "#os-hint") == ""
        await pilot.click("#next")
        await settle(pilot)
        assert "Debian" in review_os(app) or "debian" in review_os(app)
        assert "from: user" in review_os(app)


async def test_an_iso_osinfo_does_not_know_asks_for_the_os_and_drops_the_last_isos_os(picking):
    app = picking(isos=("Fedora-WS-Live-37-1-7", "NOT_AN_OS"))
    async with app.run_test(size=SIZE) as pilot:
        await to(pilot, "VmScreen")
        isos = [str(value) for _, value in app.screen.query_one("#iso")._options]  # the first: none
        fedora = next(i for i, v in enumerate(isos) if "Fedora" in v)
        unknown = next(i for i, v in enumerate(isos) if "NOT_AN_OS" in v)
        await pick(pilot, "#iso", downs=fedora)
        assert app.screen.query_one("#os").value == "fedora37"
        await pick(pilot, "#iso", downs=unknown - fedora)
        assert "does not recognise" in said(app.screen, "#iso-error")
        assert "pick the OS below" in said(app.screen, "#iso-error")
        assert app.screen.query_one("#os").is_blank() and said(app.screen, "#os-hint") == ""


def offered(app) -> list[str]:
    return [c.name for c in app.screen.query_one("#strategy").query("Choice") if c.display]


async def press_choice(pilot, radio_set: str, name: str):
    """Focus a radio set, move to the choice with the arrows and press Enter, as at the console."""
    chooser = pilot.app.screen.query_one(radio_set)
    chooser.focus()
    names = [c.name for c in chooser.query("Choice")]
    for _ in names:  # the arrows move over what is offered only
        if chooser._selected is not None and names[chooser._selected] == name:
            break
        await pilot.press("down")
        assert chooser.query("Choice")[chooser._selected].display
    await pilot.press("enter")
    await settle(pilot)


async def test_with_an_igpu_and_a_dgpu_the_person_picks_the_gpu_and_the_strategy_follows_it(picking):
    """amd-desktop-isolated-dgpu: a Radeon RX 6800 (isolated, vfio-pci) and the Raphael iGPU (the host display)."""
    app = picking(machine="amd-desktop-isolated-dgpu")
    async with app.run_test(size=SIZE) as pilot:
        await to(pilot, "GpuScreen")
        gpus = [(c.name, c.value, c.text) for c in app.screen.query_one("#gpu").query("Choice")]
        assert gpus == [("0000:0a:00.0", True, "0000:0a:00.0 Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]"),
                        ("0000:10:00.0", False, "0000:10:00.0 Raphael (host display)")]  # the dGPU first
        assert "Raphael" not in said(app.screen, "#gpus") and "Navi 21" in said(app.screen, "#gpus")
        await press_choice(pilot, "#gpu", "0000:10:00.0")
        assert "Raphael" in said(app.screen, "#gpus") and "Navi 21" not in said(app.screen, "#gpus")
        assert "console blind" in said(app.screen, "#gpus")  # what passing the host's display through costs
        await press_choice(pilot, "#strategy", "vfio-pci")
        await pilot.click("#next")
        await settle(pilot)
        await pick(pilot, "#os", "windows 1")
        await pilot.click("#next")
        await settle(pilot)
        errors = " ".join(str(e.render()) for e in app.screen.query(".field-error"))
        assert type(app.screen).__name__ == "ReviewScreen", errors
        spec = app.planned.spec
        assert (spec.gpu.strategy, spec.gpu.gpu) == ("vfio-pci", "0000:10:00.0"), spec.gpu
        assert "0000:10:00.0" in said(app.screen, "#review") and "0000:0a:00.0" not in said(app.screen, "#review")
        await pilot.press("escape", "escape")  # back to graphics: the choice is kept; the dGPU again
        await settle(pilot)
        assert type(app.screen).__name__ == "GpuScreen"
        assert [c.name for c in app.screen.query_one("#gpu").query("Choice") if c.value] == ["0000:10:00.0"]
        await press_choice(pilot, "#gpu", "0000:0a:00.0")
        assert offered(app) == ["auto", "virtio-gpu-2d", "vfio-pci"]
        await press_choice(pilot, "#strategy", "auto")
        await pilot.click("#next")
        await settle(pilot)
        await pilot.click("#next")
        await settle(pilot)
        assert (app.planned.spec.gpu.strategy, app.planned.spec.gpu.gpu) == ("vfio-pci", "0000:0a:00.0")


async def test_with_one_gpu_there_is_nothing_to_pick(picking):
    app = picking(machine="intel-laptop-gvtg")
    async with app.run_test(size=SIZE) as pilot:
        await to(pilot, "GpuScreen")
        assert not app.screen.query("#gpu") and "mdev" in offered(app)
