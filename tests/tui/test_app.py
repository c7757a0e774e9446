"""Pilot tests of every step of the installer, at 80x25, keyboard only."""

from __future__ import annotations

import pytest

from screens.disk import DiskScreen
from screens.encryption import EncryptionScreen
from screens.host_user import HostUserScreen
from screens.summary import SummaryScreen
from screens.welcome import WelcomeScreen
from screens.widgets import ConfirmQuit, HelpScreen
from tests.tui.conftest import to_disk, to_encryption, walk_to_summary

SIZE = (80, 25)


def text(screen) -> str:
    return "\n".join(str(w.render()) for w in screen.query("Static"))


async def test_welcome_names_the_sandbox_and_warns_without_blocking(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)
        body = text(app.screen)
        assert "Step 1 of 7" in body and "sandbox disk image" in body
        assert "Note:" not in body  # the saved laptop has VT-x and an IOMMU
        await pilot.press("tab", "enter")
        await pilot.pause()
        assert isinstance(app.screen, DiskScreen)


async def test_the_keyboard_layout_is_kept_and_shown_beside_the_passphrase(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.screen.query_one("#keyboard").value = "fr"
        await pilot.pause()
        assert app.draft["keyboard"] == "fr"
        await pilot.press("enter")  # focus moved to Next
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, EncryptionScreen)
        assert "layout: fr" in text(app.screen)  # the field's narrow hint: the keymap's name


async def test_keymaps_are_offered_by_the_names_people_know_and_the_keymap_name_is_written(app_factory):
    """Issue 21: the keyboard choice listed raw keymap names (de-nodeadkeys). A person opens the list, types the
    language, picks the variant: the answer written keeps the keymap's name, which loadkeys and vconsole take."""
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.focused is app.screen.query_one("#keyboard")
        await pilot.press("enter", *"german", "down", "enter")
        await pilot.pause()
        chosen = app.screen.query_one("#keyboard")
        assert chosen.value == "de-nodeadkeys" and app.draft["keyboard"] == "de-nodeadkeys"
        assert "German (no dead keys, de-nodeadkeys)" in str(chosen.render())
        assert app.data()["host"]["keyboard"] == "de-nodeadkeys"


async def test_the_keyboard_list_keeps_the_layout_on_esc_and_searches_what_is_typed_anywhere_in_a_name(app_factory):
    """The list opens on its own screen with the current layout highlighted; Esc leaves the layout as it was, and
    typing jumps to the name holding the text earliest (here inside the brackets: no name starts with "latin-9")."""
    from screens.choice import ChoiceList

    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        choice = app.screen.query_one("#keyboard")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceList)
        choices = app.screen.query_one("#choices")
        assert choices.get_option_at_index(choices.highlighted).id == "us"
        await pilot.press("down", "escape")
        await pilot.pause()
        assert app.screen.query_one("#keyboard") is choice and choice.value == "us" and app.focused is choice
        assert app.draft.get("keyboard", "us") == "us"
        await pilot.press("space", *"latin-9", "enter")
        await pilot.pause()
        assert choice.value == "fr-latin9" and app.draft["keyboard"] == "fr-latin9"
        assert "French (AZERTY, Latin-9, fr-latin9)" in str(choice.render())
        with pytest.raises(ValueError, match="not one of the options"):
            choice.value = "us; rm -rf /"
        assert choice.value == "fr-latin9"


async def test_the_keyboard_list_opens_with_up_or_a_click_as_select_did(app_factory):
    from screens.choice import ChoiceList

    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for opening in (lambda: pilot.press("up"), lambda: pilot.click("#keyboard")):
            await opening()
            await pilot.pause()
            assert isinstance(app.screen, ChoiceList)
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, WelcomeScreen)


async def test_disk_step_lists_the_sandbox_disk_only(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await to_disk(pilot)
        table = app.screen.query_one("DataTable")
        assert table.row_count == 1
        assert "Sandbox disk image" in str(table.get_row_at(0))


async def test_passphrases_must_match_and_be_long_enough(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await to_encryption(pilot)
        await pilot.press(*"short", "enter", *"short", "enter")
        assert "at least 8 characters" in text(app.screen)
        assert "too short" in text(app.screen)
        screen = app.screen
        screen.query_one("#pass1").value = "long enough one"
        screen.query_one("#pass2").value = "long enough two"
        screen.query_one("#pass2").focus()
        await pilot.press("enter")
        assert "differ" in text(app.screen) and isinstance(app.screen, EncryptionScreen)


async def test_escape_goes_back_without_losing_what_was_typed(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_summary(pilot)
        assert isinstance(app.screen, SummaryScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, HostUserScreen)
        assert app.screen.query_one("#user").value == "admin"
        await pilot.press("escape")
        assert isinstance(app.screen, EncryptionScreen)
        assert app.screen.query_one("#pass1").value == "correct horse battery"


async def test_host_user_errors_are_the_answer_files_rules_in_the_users_words(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_summary(pilot)
        await pilot.press("escape")
        screen = app.screen
        screen.query_one("#hostname").value = "bad_host"
        screen.query_one("#next").focus()
        await pilot.press("enter")
        assert "'bad_host' is not a valid hostname" in str(screen.query_one("#hostname-error").render())
        assert "host.hostname" not in text(screen)


async def test_summary_names_the_disk_and_wants_its_serial(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_summary(pilot)
        screen = app.screen
        assert isinstance(screen, SummaryScreen)
        body = text(screen)
        assert "ALL DATA ON THIS DISK WILL BE ERASED: /var/tmp/phyllome-tui-test/disk.img" in body
        assert "Type yes to install" in body  # the sandbox image holds nothing yet
        install = screen.query_one("#install")
        assert install.disabled
        await pilot.press(*"no", "enter")
        assert "Type exactly what is asked" in text(screen) and isinstance(app.screen, SummaryScreen)


async def test_help_and_quit_dialogs(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmQuit)
        assert "Nothing has been written" in text(app.screen)
        await pilot.press("n")
        assert isinstance(app.screen, WelcomeScreen)
        await pilot.press("ctrl+q", "y")
    assert app.return_code == 0


async def test_partial_answers_open_on_the_first_missing_step(app_factory, tmp_path):
    answers = tmp_path / "partial.toml"
    answers.write_text('version = 1\n[host]\nkeyboard = "de"\nhostname = "lab"\n[[users]]\nname = "ops"\n'
                       'password = "a long password"\n')
    app = app_factory(answers=answers)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        assert isinstance(app.screen, DiskScreen)
        assert app.draft["keyboard"] == "de" and app.draft["hostname"] == "lab"


@pytest.mark.parametrize("text", [
    "version = 1\nx = " + "[" * 5000 + "]" * 5000 + "\n",  # nesting past tomllib's recursion
    'version = 1\nhost = "lab"\nstorage = 3\nusers = "ops"\n',  # tables of the wrong type
    'version = 1\nusers = [1, 2]\n[host]\nkeyboard = 7\nhostname = ["lab"]\n',  # values of the wrong type
    'version = 1\n[[users]]\nname = "ops"\npassword = 12\nssh_keys = [3]\n',
])
async def test_a_hostile_partial_answer_file_opens_the_installer_without_its_bad_values(app_factory, tmp_path,
                                                                                          text):
    answers = tmp_path / "partial.toml"
    answers.write_text(text)
    app = app_factory(answers=answers)
    assert all(isinstance(value, str) for key, value in app.draft.items() if key != "encryption"), app.draft
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        assert isinstance(app.screen, (WelcomeScreen, DiskScreen)), app.screen
        await pilot.press("ctrl+q", "y")


async def test_a_layout_that_cannot_be_loaded_is_said_not_silently_kept(app_factory):
    """The live medium had no keymaps at all: loadkeys failed for every layout and the person typed a passphrase
    in the US layout believing it was theirs. The runner's loadkeys is scripted (the console here is no VT)."""
    from phyllome_installer.core.runner import RecordingRunner

    runner = RecordingRunner()
    runner.fail(("loadkeys", "de"), stderr="cannot open file de")
    app = app_factory(runner=runner)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.load_keymap("fr") and not app.load_keymap("de")
        await pilot.pause()
        shown = [n.message for n in app._notifications]
        assert any("The layout de could not be loaded on this console (cannot open file de)" in m for m in shown)
        assert not any("layout fr" in m for m in shown), shown
        await pilot.press("ctrl+q", "y")
