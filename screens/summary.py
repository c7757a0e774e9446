"""The summary: every choice, the plan, and the typed consent to erase the disk."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Static

from phyllome_installer.frontend import confirmation_word

from .fields import Field
from .hanging import Hanging
from .progress import ProgressScreen
from .widgets import Step


class SummaryScreen(Step):
    STEP = 5
    HELP = ("Read this before you go on: the disk named in the warning is erased completely.\n\n"
            "Tab moves to the plan (arrows and PgUp/PgDn scroll it) and back.\n\n"
            "To confirm, type what is asked (the end of the disk's serial number, its size, or yes), then Enter.")

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        # The warning and the confirmation stay on screen; only the plan between them scrolls.
        yield Static("", id="erase", classes="danger")
        with VerticalScroll(classes="body", id="plan-box"):  # Tab reaches it: the arrows scroll the plan
            yield Hanging("", id="plan")
        with Vertical(id="confirm-box"):
            yield Static("", id="ask")
            with Horizontal(classes="row"):
                yield Field(placeholder="confirmation", id="confirm")
                yield Button("Erase and install", id="install", variant="error", disabled=True)
            yield Static("", id="error", classes="warning")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        config, problems = self.app.config()
        error = self.query_one("#error", Static)
        if config is None:
            error.update("The answers have problems:\n" + "\n".join(problems))
            return
        try:
            plan = self.app.installer.plan(config, self.app.machine())
        except Exception as exc:
            error.update(f"Cannot plan the install: {exc}")
            return
        disk = plan.context.disk
        self.word, ask = confirmation_word(self.app.chosen_disk or disk)
        self.identity = disk.identity
        self.query_one("#erase", Static).update(f"ALL DATA ON THIS DISK WILL BE ERASED: {disk.describe()}")
        self.query_one("#plan", Static).update(choices(config, plan) + "\n\n" + plan.render())
        self.query_one("#ask", Static).update(ask + ":")
        self.plan_config = config
        confirm = self.query_one("#confirm", Input)
        confirm.value = ""
        confirm.focus()

    @on(Input.Changed, "#confirm")
    def check(self, event: Input.Changed) -> None:
        self.query_one("#install", Button).disabled = event.value.strip().lower() != getattr(self, "word", "\0")

    @on(Input.Submitted, "#confirm")
    @on(Button.Pressed, "#install")
    def install(self) -> None:
        if self.query_one("#install", Button).disabled:
            self.query_one("#error", Static).update("Type exactly what is asked to confirm.")
            return
        # The consent is bound to what the disk is (its serial or by-id name), not to its path.
        self.app.confirmed_identity = self.identity or None
        self.app.push_screen(ProgressScreen(self.plan_config, consent=self.app.confirmed_identity))


def choices(config, plan) -> str:
    """Every choice of the steps, as the install will apply it (the plan's config: in the sandbox, its own
    payload and, where F2FS cannot be mounted, ext4)."""
    from storage.probe import human_size

    done = plan.context.config
    storage, payload = done.storage, done.payload
    user = config.users[0]
    login = [what for what, given in (("password", user.password or user.password_hash),
                                      ("SSH key", user.ssh_keys)) if given]
    source = {"local": lambda p: f"{p.ref} from {p.repo}", "url": lambda p: f"{p.ref} from {p.url}",
              "container": lambda p: p.image}[payload.kind](payload)
    rows = [("Keyboard", config.host.keyboard),
            ("Disk", f"{plan.context.disk.path} ({human_size(plan.context.disk.size)}), erased"),
            ("Encryption", "VM store encrypted (passphrase set; recovery code at the end)"
             if storage.encryption.enabled else "VM store NOT encrypted"),
            ("Hostname", config.host.hostname),
            ("Time zone", config.host.timezone),
            ("Administrator", f"{user.name} (logs in with {' and '.join(login) or 'nothing'})"),
            ("Payload", f"{payload.kind}: {source}"),
            ("Root filesystem", storage.root_fs + (", compressed" if storage.compression else "")),
            ("First boot", first_boot(config))]
    return "Your choices\n" + "\n".join(f"  {name + ':':<17}{value}" for name, value in rows)


def first_boot(config) -> str:  # type: ignore[no-untyped-def]
    """What the first boot will do; with the VM store not encrypted there is nothing to unlock."""
    text = config.firstboot.describe()
    return text if config.storage.encryption.enabled else text.replace("unlock, ", "")
