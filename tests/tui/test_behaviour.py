"""Issue 16's TUI behaviour, one pilot test per promise: quitting, words for states, secrets across Back, labels and
errors, 80x24, the Disk screen's contents, the summary, the saved answer file, errors before the engine, consent."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from textual.widgets import Button

from phyllome_installer.answers import load
from phyllome_installer.cli import install_main
from phyllome_installer.core.errors import UserError
from phyllome_installer.core.facts import MIN_PASSWORD
from phyllome_installer.core.progress import TaskStarted
from phyllome_installer.core.runner import RecordingRunner
from phyllome_installer.engine import Result
from phyllome_installer.frontend import Installer
from phyllome_installer.sandbox import Sandbox, kernel_can_mount
from screens.app import create_installer_app
from screens.disk import DiskScreen
from screens.done import DoneScreen
from screens.encryption import EncryptionScreen
from screens.failure import FailureScreen
from screens.host_user import HostUserScreen
from screens.progress import ProgressScreen
from screens.summary import SummaryScreen
from screens.welcome import WelcomeScreen
from screens.widgets import ConfirmQuit
from storage.probe import Disk, MachineProfile
from tests.tui.conftest import MACHINE, to_disk, to_encryption, to_host, walk_to_summary

SIZE = (80, 25)
CODE = "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567"


def text(screen) -> str:
    return "\n".join(str(w.render()) for w in screen.query("Static"))


class FakeInstaller(Installer):
    """The engine's side of an install, played: it writes until released or stopped, and records the consent.

    ``now``: the identity the disk's path has at install time (a re-pointed path: another disk's)."""

    def __init__(self, *args, disk: Disk | None = None, now: str | None = None, fail_before: Exception | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.disk = disk
        self.now = now
        self.fail_before = fail_before
        self.release = threading.Event()
        self.consents: list[str | None] = []

    def machine(self) -> MachineProfile:
        if self.disk is None:
            return super().machine()
        return MachineProfile(cpu_vendor="intel", firmware="uefi", ram_bytes=16 << 30, disks=[self.disk])

    def install(self, config, sink=None, consent=None) -> Result:
        self.consents.append(consent)
        if self.fail_before is not None:
            raise self.fail_before
        if self.now is not None and consent and self.now != consent:
            return Result(ok=False, failed_task="check", exit_code=2,
                          error=f"{self.disk.path} is not the disk you agreed to erase: it is now {self.now}, "
                                f"you confirmed {consent}; nothing was written")
        sink.emit(TaskStarted("partition", "Partition the disk", 2, 9))
        while not self.release.wait(0.05):
            if self.stop.requested:
                return Result(ok=False, failed_task="partition", exit_code=130, touched=True,
                              error="interrupted (quit); the disk is not bootable")
        return Result(ok=True, touched=True, recovery_codes={"/var/lib/libvirt/images": CODE})


def fake_app(tmp_path=None, **kwargs):
    base = tmp_path / "sandbox" if tmp_path is not None else Path("/var/tmp/phyllome-tui-test")
    sandbox = None if "disk" in kwargs else Sandbox(base)
    installer = FakeInstaller(RecordingRunner(), sandbox=sandbox, proc=MACHINE / "proc", sys_root=MACHINE / "sys",
                              unattended=False,
                              **kwargs)
    return create_installer_app(installer)


async def start_install(app, pilot, word: str = "yes") -> None:
    await walk_to_summary(pilot)
    assert isinstance(app.screen, SummaryScreen), text(app.screen)
    await pilot.press(*word, "enter")
    await wait_for(pilot, ProgressScreen)


async def wait_for(pilot, kind, tries: int = 200):
    for _ in range(tries):
        await pilot.pause(0.1)
        if isinstance(pilot.app.screen, kind):
            return
    raise AssertionError(f"never reached {kind.__name__}: {pilot.app.screen}")


# ------------------------------------------------------------------------------------------------ quitting

async def test_quit_while_writing_asks_stays_by_default_then_stops_and_says_the_disk_is_not_bootable():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await start_install(app, pilot)
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmQuit)
        assert "writing to the disk" in text(app.screen) and "Nothing has been written" not in text(app.screen)
        assert app.screen.focused.id == "no"
        await pilot.press("enter")  # Ctrl+Q then Enter: stays
        assert isinstance(app.screen, ProgressScreen) and app.busy and not app.installer.stop.requested
        await pilot.press("ctrl+c")  # the same as Ctrl+Q
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("y")
        assert app.installer.stop.reason == "quit"
        await wait_for(pilot, FailureScreen)
        body = text(app.screen)
        assert "The install was stopped." in body and "NOT bootable" in body
        assert not app.screen.query("#retry")  # a stop cannot be retried: quit and start again
        await pilot.press("q")
    assert app.return_code == 130


async def test_an_install_that_finishes_while_the_quit_dialog_is_open_shows_the_recovery_code_first():
    app = fake_app()
    async with app.run_test(size=SIZE) as pilot:
        await start_install(app, pilot)
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmQuit)
        app.installer.release.set()
        await wait_for(pilot, DoneScreen)
        assert CODE in text(app.screen) and not any(isinstance(s, ConfirmQuit) for s in app.screen_stack)
        await pilot.press("ctrl+q")
        body = text(app.screen)
        assert "recovery code" in body and "Nothing has been written" not in body
        await pilot.press("y")
    assert app.return_code == 0


async def test_the_quit_dialog_defaults_to_staying_and_the_palette_is_off(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)  # no command palette (no Theme, no emoji)
        await pilot.press("ctrl+q")
        assert "Nothing has been written to any disk." in text(app.screen)
        await pilot.press("enter")
        assert isinstance(app.screen, WelcomeScreen)
        await pilot.press("ctrl+c", "y")
    assert app.return_code == 0


async def test_a_signal_while_nothing_runs_ends_the_tui_non_zero(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.installer.stop.request("SIGTERM")
        await pilot.pause(0.8)
    assert app.return_code == 130


async def test_errors_before_the_engine_end_on_the_failure_screen():
    app = fake_app(fail_before=UserError("could not attach the sandbox image to a loop device"))
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_summary(pilot)
        await pilot.press(*"yes", "enter")
        await wait_for(pilot, FailureScreen)
        body = text(app.screen)
        assert "could not attach the sandbox image" in body and "Nothing was written to the disk." in body
        await pilot.press("r")
        assert isinstance(app.screen, SummaryScreen)
        await pilot.press("ctrl+q", "y")
    assert app.return_code == 2  # the failure's exit code: a quit after a failure is not a success


async def test_a_failed_probe_ends_on_the_failure_screen_and_retry_probes_again(app_factory):
    app = app_factory()

    def broken():
        raise OSError("sfdisk: cannot open the sandbox image")

    async with app.run_test(size=SIZE) as pilot:
        app.machine = broken
        await to_disk(pilot)
        await wait_for(pilot, FailureScreen)
        assert "cannot open the sandbox image" in text(app.screen)
        del app.machine
        await pilot.press("r")
        await pilot.pause(0.5)
        assert isinstance(app.screen, DiskScreen) and app.screen.query_one("DataTable").row_count == 1


# ------------------------------------------------------------------------------------------------ the steps

async def test_the_encryption_state_is_in_words(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await to_encryption(pilot)
        box = app.screen.query_one("#enabled")
        assert "ON" in str(box.label)
        box.value = False
        await pilot.pause()
        assert "OFF" in str(box.label) and app.screen.query_one("#pass1").disabled


async def test_secrets_survive_back_and_forward_and_the_screen_says_so(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_summary(pilot)
        for _ in range(3):
            await pilot.press("escape")  # summary -> host -> encryption -> disk
        assert isinstance(app.screen, DiskScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, EncryptionScreen)
        assert app.screen.query_one("#pass1").value == app.screen.query_one("#pass2").value == "correct horse battery"
        assert "kept" in text(app.screen)
        await pilot.press("enter", "enter")
        await pilot.pause()
        assert isinstance(app.screen, HostUserScreen)
        assert app.screen.query_one("#pw1").value == "a long password" and "kept" in text(app.screen)


async def test_every_field_keeps_its_label_and_every_error_shows_at_once_beside_it(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await to_host(pilot)
        screen = app.screen
        screen.query_one("#hostname").value = "bad_host"
        screen.query_one("#timezone").value = "Europe/Pari"
        screen.query_one("#user").value = "root"
        screen.query_one("#pw1").value = "short"
        screen.query_one("#pw2").value = "shorter"
        screen.query_one("#next").focus()
        await pilot.press("enter")
        body = text(screen)
        for label in ("Hostname:", "Time zone:", "Admin user name:", "Password:", "Password again:", "SSH key"):
            assert label in body
        errors = {name: str(screen.query_one(f"#{name}-error").render()) for name in ("hostname", "timezone", "user",
                                                                                       "pw1", "pw2")}
        assert "not a valid hostname" in errors["hostname"]
        assert "did you mean 'Europe/Paris'" in errors["timezone"]
        assert "system account" in errors["user"]
        assert f"at least {MIN_PASSWORD} characters" in errors["pw1"]
        assert "differ" in errors["pw2"]
        assert "host.hostname" not in body and "users[0]" not in body
        assert isinstance(app.screen, HostUserScreen)


async def test_the_admin_password_has_a_minimum_length(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await to_host(pilot)
        screen = app.screen
        screen.query_one("#user").value = "admin"
        screen.query_one("#pw1").value = screen.query_one("#pw2").value = "x" * (MIN_PASSWORD - 1)
        screen.query_one("#next").focus()
        await pilot.press("enter")
        assert isinstance(app.screen, HostUserScreen)
        assert f"at least {MIN_PASSWORD} characters" in str(screen.query_one("#pw1-error").render())


def visible_buttons_fit(screen, height: int) -> list[str]:
    """Buttons of the screen that are not wholly on it, above the footer."""
    return [f"{b.id}: {b.region}" for b in screen.query(Button)
            if b.display and (b.region.height < 3 or b.region.bottom > height - 1)]


async def test_every_screen_fits_80x24_with_its_buttons_reachable(app_factory):
    for height in (24, 25):
        app = app_factory()
        async with app.run_test(size=(80, height)) as pilot:
            await pilot.pause()
            await to_disk(pilot)
            for kind in (DiskScreen, EncryptionScreen, HostUserScreen, SummaryScreen):
                await wait_for(pilot, kind)  # however long a loaded machine takes to get there
                assert not visible_buttons_fit(app.screen, height), (height, app.screen)
                if isinstance(app.screen, DiskScreen):
                    await pilot.press("enter")
                elif isinstance(app.screen, EncryptionScreen):
                    await pilot.press(*"correct horse battery", "enter", *"correct horse battery", "enter")
                elif isinstance(app.screen, HostUserScreen):
                    app.screen.query_one("#user").value = "admin"
                    app.screen.query_one("#pw1").value = app.screen.query_one("#pw2").value = "a long password"
                    app.screen.query_one("#next").press()
            assert not visible_buttons_fit(app.screen, height)
            config, _ = app.config()
            for screen in (DoneScreen(config, {"/var/lib/libvirt/images": CODE}),
                           FailureScreen("ostree-deploy", "a long error\n" * 30)):
                await app.push_screen(screen)
                await pilot.pause()
                assert not visible_buttons_fit(app.screen, height), (height, app.screen)


async def test_the_disk_screen_shows_what_the_sandbox_image_holds(tmp_path):
    runner = RecordingRunner()
    sfdisk = {"partitiontable": {"label": "gpt", "sectorsize": 512, "partitions": [
        {"node": "disk.img1", "start": 2048, "size": 1228800, "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},
        {"node": "disk.img2", "start": 1230848, "size": 2097152, "type": "BC13C2FF-59E6-4262-A352-B275FD6F7172"},
        {"node": "disk.img3", "start": 3328000, "size": 30000000, "type": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"}]}}
    runner.respond(["sfdisk", "--json"], stdout=json.dumps(sfdisk))
    runner.respond(["blkid", "-p", "-o", "export", "-O", str(2048 * 512)], stdout="TYPE=vfat\nLABEL=EFI\n")
    runner.respond(["blkid", "-p", "-o", "export", "-O", str(1230848 * 512)], stdout="TYPE=ext4\nLABEL=boot\n")
    runner.respond(["blkid", "-p", "-o", "export", "-O", str(3328000 * 512)], stdout="TYPE=ext4\nLABEL=root\n")
    runner.respond(["debugfs", "-R", "ls -p /ostree/deploy"], stdout="/2/40755/0/0/./\n/2/40755/0/0/../\n"
                                                                     "/12/40755/0/0/phyllome//\n")
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / "disk.img").write_bytes(b"")
    installer = Installer(runner, sandbox=Sandbox(tmp_path / "sandbox"), proc=MACHINE / "proc",
                          sys_root=MACHINE / "sys")
    app = create_installer_app(installer)
    async with app.run_test(size=SIZE) as pilot:
        await to_disk(pilot)
        body = text(app.screen)
        assert "Contents: gpt, 1: vfat 600.0 MiB 'EFI'; 2: ext4 1.0 GiB 'boot'; 3: ext4" in body
        assert "Found: Phyllome OS (ostree)" in body
        assert "Phyllome OS (ostree)" in str(app.screen.query_one("DataTable").get_row_at(0))
        assert not any(call.argv[0] == "losetup" for call in runner.calls)  # read from the file, not attached
        await pilot.press("enter")
        await pilot.press(*"correct horse battery", "enter", *"correct horse battery", "enter")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#user").value = "admin"
        screen.query_one("#pw1").value = screen.query_one("#pw2").value = "a long password"
        screen.query_one("#next").press()
        await pilot.pause(0.3)
        assert "Type the last four characters of its serial (SANDBOX-0001)" in text(app.screen)  # not "yes"


async def test_the_summary_shows_every_choice(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_summary(pilot)
        body = text(app.screen)
        for line in ("Keyboard:        us", "Disk:            /var/tmp/phyllome-tui-test/disk.img",
                     "Encryption:      VM store encrypted", "Hostname:        phyllome",
                     "Time zone:       Europe/Paris", "Administrator:   admin (logs in with password)",
                     "Payload:         local:", "Root filesystem: "):
            assert line in body, line


# ------------------------------------------------------------------------------------------------ consent

DISK = Disk(path="/dev/sdz", name="sdz", model="Test SSD", serial="S3Z9NB0K123456", size=256 << 30,
            transport="sata", table="gpt", identity="serial:S3Z9NB0K123456")


async def test_the_confirmed_disks_identity_travels_to_the_install():
    app = fake_app(disk=DISK)
    async with app.run_test(size=SIZE) as pilot:
        await start_install(app, pilot, word="3456")
        assert app.installer.consents == ["serial:S3Z9NB0K123456"]
        app.installer.release.set()
        await wait_for(pilot, DoneScreen)


async def test_a_re_pointed_disk_path_is_refused_and_nothing_is_written():
    app = fake_app(disk=DISK, now="serial:OTHER-DISK-0001")
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_summary(pilot)
        await pilot.press(*"3456", "enter")
        await wait_for(pilot, FailureScreen)
        body = text(app.screen)
        assert "not the disk you agreed to erase" in body and "Nothing was written to the disk." in body
        assert app.installer.consents == ["serial:S3Z9NB0K123456"]


# ------------------------------------------------------------------------------------------------ saved answers

async def test_the_saved_answer_file_records_what_was_done_and_validates_with_the_secrets_added_back(
        app_factory, tmp_path, monkeypatch, capsys):
    saved = tmp_path / "saved.toml"
    monkeypatch.setenv("PHYLLOME_SAVE_ANSWERS", str(saved))
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_summary(pilot)
        config, _ = app.config()
        await app.push_screen(DoneScreen(config, {"/var/lib/libvirt/images": CODE}))
        await pilot.pause()
        await pilot.press("s")
        assert "saved to" in text(app.screen)
    written = saved.read_text()
    assert "correct horse battery" not in written and "a long password" not in written
    assert 'action = "none"' in written and 'action = "reboot"' not in written
    assert f'root_fs = "{"f2fs" if kernel_can_mount("f2fs") else "ext4"}"' in written
    assert "# Add them back" in written
    # Only the removed secrets to add back, as the header says:
    restored = (written.replace('# passphrase = "..."  (removed: secrets are never written)',
                                'passphrase = "correct horse battery"')
                .replace('# password = "..."  (removed: secrets are never written)', 'password = "a long password"'))
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(restored)
    assert load(fixed).ok, load(fixed).problems
    assert install_main(["validate", str(fixed)]) == 0, capsys.readouterr().err
