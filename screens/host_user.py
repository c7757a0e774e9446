"""The host's name, its time zone and the administrator."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Static

from phyllome_installer.core.facts import MIN_PASSWORD

from .fields import Field
from .summary import SummaryScreen
from .widgets import FormField, Step

FIELDS = ("hostname", "timezone", "user", "pw1", "pw2", "ssh")


class HostUserScreen(Step):
    STEP = 4
    HELP = ("The name of this computer on the network, its time zone (type to search, Right accepts the "
            "suggestion), and the administrator account: a password typed twice (at least "
            f"{MIN_PASSWORD} characters), or an SSH public key, or both.\n\n"
            "What you type is kept when you go back to an earlier step and forward again.")

    def compose(self) -> ComposeResult:
        from phyllome_installer.answers import timezones

        draft = self.app.draft
        given = str(draft.get("password") or "")
        pw1, pw2 = self.app.secrets.get("password", (given, given))
        yield from self.compose_header()
        with VerticalScroll(classes="body", can_focus=False):
            yield Static("This computer and its administrator", classes="title")
            yield FormField("Hostname:", Field(draft.get("hostname", "phyllome"), id="hostname", compact=True))
            yield FormField("Time zone:", Field(draft.get("timezone", "UTC"), placeholder="e.g. Europe/Paris",
                                                id="timezone", compact=True,
                                                suggester=SuggestFromList(sorted(timezones()),
                                                                          case_sensitive=False)))
            yield FormField("Admin user name:", Field(draft.get("user", ""), placeholder="e.g. admin", id="user",
                                                      compact=True))
            yield FormField("Password:", Field(pw1, placeholder=f"at least {MIN_PASSWORD} characters",
                                               password=True, id="pw1", compact=True))
            yield FormField("Password again:", Field(pw2, password=True, id="pw2", compact=True))
            yield FormField("SSH key (optional):", Field(draft.get("ssh_key", ""), placeholder="ssh-ed25519 AAAA...",
                                                         id="ssh", compact=True))
            yield Static("", id="error", classes="warning")
        with Horizontal(id="host-buttons"):  # below the fields, never scrolled away by their errors
            yield Button("Next: summary", id="next", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        if self.query_one("#pw1", Input).value:
            self.query_one("#error", Static).update("The password you typed before is kept (shown as dots).")
        self.query_one("#hostname", Input).focus()

    def action_back(self) -> None:
        self.remember()
        super().action_back()

    def remember(self) -> None:
        self.app.secrets["password"] = (self.query_one("#pw1", Input).value, self.query_one("#pw2", Input).value)

    @on(Input.Submitted)
    def advance(self, event: Input.Submitted) -> None:
        if event.input.id == "ssh":
            self.next()
        else:
            self.focus_next()

    @on(Button.Pressed, "#next")
    def next(self) -> None:
        value = {name: self.query_one(f"#{name}", Input).value.strip() for name in ("hostname", "timezone", "user",
                                                                                     "ssh")}
        pw1, pw2 = self.query_one("#pw1", Input).value, self.query_one("#pw2", Input).value
        self.remember()
        problems = self.app.check_host_user(value["hostname"], value["timezone"], value["user"], pw1, value["ssh"])
        if not pw1 and not value["ssh"]:
            problems["pw1"] = "Give a password or an SSH key, or the administrator cannot log in."
        if pw1 != pw2:
            problems["pw2"] = "The two passwords differ."
        for name in FIELDS:
            self.query_one(f"#{name}-field", FormField).set_error(problems.get(name, ""))
        count = len(problems)
        self.query_one("#error", Static).update(
            f"{count} problem{'s' if count > 1 else ''}: fix what is marked above." if count else "")
        if problems:
            return
        self.app.draft.update(hostname=value["hostname"], timezone=value["timezone"], user=value["user"],
                              password=pw1, ssh_key=value["ssh"])
        self.app.push_screen(SummaryScreen())
