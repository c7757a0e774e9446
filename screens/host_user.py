"""The host's name, its time zone and the administrator."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Static

from .summary import SummaryScreen
from .widgets import Step


class HostUserScreen(Step):
    STEP = 4
    HELP = ("The name of this computer on the network, its time zone (type to search, Right accepts the "
            "suggestion), and the administrator account: a password typed twice, or an SSH public key, or both.")

    def compose(self) -> ComposeResult:
        from phyllome_installer.answers import timezones

        draft = self.app.draft
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("This computer and its administrator", classes="title")
            yield Input(draft.get("hostname", "phyllome"), placeholder="hostname", id="hostname")
            yield Input(draft.get("timezone", "UTC"), placeholder="time zone, e.g. Europe/Paris", id="timezone",
                        suggester=SuggestFromList(sorted(timezones()), case_sensitive=False))
            yield Input(draft.get("user", ""), placeholder="administrator user name", id="user")
            yield Input(placeholder="password", password=True, id="pw1")
            yield Input(placeholder="the same password again", password=True, id="pw2")
            yield Input(draft.get("ssh_key", ""), placeholder="or an SSH public key (ssh-ed25519 AAAA...)", id="ssh")
            yield Static("", id="error", classes="warning")
            yield Button("Next: summary", id="next", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#hostname", Input).focus()

    @on(Input.Submitted)
    def advance(self, event: Input.Submitted) -> None:
        if event.input.id == "ssh":
            self.next()
        else:
            self.focus_next()

    @on(Button.Pressed, "#next")
    def next(self) -> None:
        value = {name: self.query_one(f"#{name}", Input).value.strip()
                 for name in ("hostname", "timezone", "user", "ssh")}
        pw1, pw2 = self.query_one("#pw1", Input).value, self.query_one("#pw2", Input).value
        error = ""
        if pw1 != pw2:
            error = "The two passwords differ."
        elif not pw1 and not value["ssh"]:
            error = "Give a password or an SSH key, or the administrator cannot log in."
        problems = [] if error else self.app.check_host_user(value["hostname"], value["timezone"], value["user"],
                                                             pw1, value["ssh"])
        error = error or "\n".join(problems)
        self.query_one("#error", Static).update(error)
        if error:
            return
        self.app.draft.update(hostname=value["hostname"], timezone=value["timezone"], user=value["user"],
                              password=pw1, ssh_key=value["ssh"])
        self.app.push_screen(SummaryScreen())
