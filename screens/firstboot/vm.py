"""Step 4: the primary VM. The ISO (the ISO directory and removable media), the OS detected from it or chosen by
its osinfo short id, and name, memory, vCPUs and disk size prefilled by the sizing rule with the minimum shown.
Every problem is shown at once, next to its field."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import get_current_worker

from phyllome_installer.answers import parse_size, size_text

from ..console import Field
from .widgets import FirstBootStep

FIELDS = ("iso", "os", "name", "memory", "cpus", "disk_size")
LABELS = {"iso": "Installation ISO", "os": "Operating system", "name": "VM name", "memory": "Memory",
          "cpus": "Virtual CPUs", "disk_size": "Disk size"}


def field_of(message: str) -> str:
    """Which field an engine error is about (else the general line)."""
    text = message.lower()
    for key, words in (("memory", ("memory",)), ("cpus", ("cpu",)), ("disk_size", ("disk",)),
                       ("iso", ("iso",)), ("name", ("named", "name")), ("os", ("osinfo", "os "))):
        if any(w in text for w in words):
            return key
    return "general"


def in_words(error: dict) -> str:
    """A refused value in words a person can act on (pydantic says "String should match pattern '^[...]$'")."""
    if error.get("type") == "string_pattern_mismatch":
        field = str(error["loc"][0]) if error.get("loc") else "value"
        if field == "name":
            return "use letters, digits, '.', '_' or '-' only (no spaces), at most 63 characters"
        return "this has characters that are not allowed here"
    return str(error.get("msg", "not accepted"))


class VmScreen(FirstBootStep):
    STEP = 4

    def compose(self) -> ComposeResult:
        choices = self.app.choices
        isos = [str(p) for p in self.app.session.isos()]
        if choices.get("iso") and choices["iso"] not in isos:
            isos.insert(0, choices["iso"])
        yield from self.compose_header()
        with VerticalScroll(classes="body"):
            yield Static("Your primary VM: the desktop you will use. Empty sizes are chosen for this computer.",
                         classes="title")
            with Horizontal(classes="field"):
                yield Label(LABELS["iso"])
                yield Select([(p, p) for p in isos], prompt="none (add one later)", id="iso",
                             value=choices.get("iso") or Select.NULL)
            yield Static("", id="iso-error", classes="field-error")
            for key, placeholder in (("os", "short id, e.g. win11, fedora37"), ("name", "desktop"),
                                     ("memory", "automatic, e.g. 8GiB"), ("cpus", "automatic"),
                                     ("disk_size", "automatic, e.g. 128GiB")):
                value = choices.get("typed", {}).get(key, choices.get({"cpus": "vcpus"}.get(key, key)))
                with Horizontal(classes="field"):
                    yield Label(LABELS[key])
                    yield Field(str(value) if value is not None else "", placeholder=placeholder, id=key)
                    yield Static("", id=f"{key}-hint", classes="hint")
                yield Static("", id=f"{key}-error", classes="field-error")
            yield Static("", id="general-error", classes="field-error")
        with Horizontal(classes="buttons"):
            yield Button("Next", id="next", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#iso", Select).focus()
        vm = self.app.config.vm
        if vm is not None and (vm.os or vm.iso) and not self.app.choices.get("asked_vm"):
            # [firstboot.vm] answers this screen: go on to the review (Esc comes back here to change it).
            self.app.choices["asked_vm"] = True
            self.call_after_refresh(self.query_one("#next", Button).press)
            return
        if self.query_one("#iso", Select).value not in (Select.NULL, None) and not self.query_one("#os", Input).value:
            self._detect(str(self.query_one("#iso", Select).value))

    def on_unmount(self) -> None:
        """Back or Quit: a detection still running ends with its screen (its child process is killed)."""
        self.app.workers.cancel_node(self)

    def action_back(self) -> None:
        self.remember()
        super().action_back()

    def remember(self) -> None:
        """What is typed, as typed (empty stays "automatic"), kept for when this screen opens again."""
        iso = self.query_one("#iso", Select).value
        self.app.choices["iso"] = str(iso) if iso not in (Select.NULL, None) else None
        self.app.choices["typed"] = {k: self.query_one(f"#{k}", Input).value for k in FIELDS[1:]}

    def on_select_changed(self, event: Select.Changed) -> None:
        # Another ISO: what was said about the last one no longer holds.
        self.query_one("#iso-error", Static).update("")
        self.query_one("#os-hint", Static).update("")
        if event.value not in (Select.NULL, None):
            self.query_one("#os-hint", Static).update("detecting...")
            self._detect(str(event.value))

    @work(thread=True, exclusive=True, group="detect")
    def _detect(self, iso: str) -> None:
        worker = get_current_worker()  # cancelled when this screen goes (Back, Quit): the detection is killed
        try:
            found, error = self.app.session.detect(Path(iso), cancelled=lambda: worker.is_cancelled), ""
        except Exception as exc:
            found, error = "", getattr(exc, "message", str(exc))
        if not worker.is_cancelled:
            self.app.call_from_thread(self._detected, found, error)

    def _detected(self, found: str, error: str) -> None:
        if found:
            self.query_one("#os", Input).value = found
            self.query_one("#os-hint", Static).update("detected from the ISO")
            self.query_one("#iso-error", Static).update("")
        else:
            self.query_one("#os-hint", Static).update("")
            self.query_one("#iso-error", Static).update(error + ": type the OS below")

    def _values(self) -> tuple[dict, dict[str, str]]:
        values: dict = {}
        errors: dict[str, str] = {}
        iso = self.query_one("#iso", Select).value
        values["iso"] = str(iso) if iso not in (Select.NULL, None) else None
        for key in FIELDS[1:]:
            text = self.query_one(f"#{key}", Input).value.strip()
            if not text:
                values[key] = None
            elif key in ("memory", "disk_size"):
                try:
                    values[key] = parse_size(text)
                except ValueError:
                    errors[key] = f"{text!r} is not a size: write it like 8GiB or 512MiB"
            elif key == "cpus":
                if text.isdigit() and int(text) >= 1:
                    values[key] = int(text)
                else:
                    errors[key] = "a whole number of CPUs, 1 or more"
            else:
                values[key] = text
        if not values["os"] and not values["iso"]:
            errors["os"] = "choose an ISO to detect the OS from, or type the OS"
        return values, errors

    def _show_errors(self, errors: dict[str, str]) -> None:
        for key in (*FIELDS, "general"):
            self.query_one(f"#{key}-error", Static).update(errors.get(key, ""))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        values, errors = self._values()
        self._show_errors(errors)
        if not errors:
            event.button.disabled = True
            self.query_one("#general-error", Static).update("Planning the VM...")
            self._plan(values)

    @work(thread=True, exclusive=True, group="plan")
    def _plan(self, values: dict) -> None:
        from pydantic import ValidationError

        from firstboot.vm import Request

        fields = {"name": values["name"] or "desktop", "memory": values["memory"], "cpus": values["cpus"],
                  "disk_size": values["disk_size"], "gpu": self.app.choices.get("gpu", "auto"), "iso": values["iso"],
                  "store": str(self.app.session.store)}
        try:
            request = Request(**{k: v for k, v in fields.items() if v is not None})
            planned, errors = self.app.session.plan(request, values["os"]), {}
        except ValidationError as exc:
            planned = None
            errors = {str(e["loc"][0]) if e["loc"] else "general": in_words(e) for e in exc.errors()}
        except Exception as exc:
            planned, errors = None, {field_of(str(exc)): str(exc)}
        self.app.call_from_thread(self._planned, values, planned, errors)

    def _planned(self, values: dict, planned, errors: dict[str, str]) -> None:
        self.query_one("#next", Button).disabled = False
        self._show_errors(errors)
        if planned is None:
            return
        minimum = planned.profile.minimum
        self.query_one("#memory-hint", Static).update(f"minimum {size_text(minimum.memory)}" if minimum.memory
                                                      else "")
        self.query_one("#cpus-hint", Static).update(f"minimum {minimum.cpus}" if minimum.cpus else "")
        self.query_one("#disk_size-hint", Static).update(f"minimum {size_text(minimum.storage)}"
                                                         if minimum.storage else "")
        self.remember()  # as typed: a size the rule chose stays "automatic" after Back
        self.app.planned = planned
        from .review import ReviewScreen

        self.app.push_screen(ReviewScreen())
