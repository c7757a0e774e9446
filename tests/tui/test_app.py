from __future__ import annotations

from screens.app import WelcomeScreen, create_installer_app


async def test_first_screen_at_80x25_names_the_sandbox_target():
    app = create_installer_app(sandbox=True)
    async with app.run_test(size=(80, 25)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)
        assert "sandbox disk image" in str(app.screen.query_one("#target").render())
        await pilot.press("ctrl+q")
    assert app.return_code in (0, None)
