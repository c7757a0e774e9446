"""Step 4: the primary VM. The ISO (the ISO directory and removable media), the OS detected from it or picked from
osinfo's list ("Windows 11 (win11)"), and name, memory, vCPUs and disk size prefilled by the sizing rule with the
minimum shown. Every problem is shown at once, next to its field."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import get_current_worker

from phyllome_installer.answers import parse_size, size_text

from ..fields import Field
from .widgets import FirstBootStep

FIELDS = ("iso", "os", "name", "memory", "cpus", "disk_size")
#: Characters of an ISO's label in the list: what the select shows at 80 columns.
ISO_WIDTH = 48
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


def iso_label(path: str, width: int = ISO_WIDTH) -> str:
    """An ISO as the list shows it: its whole path where it fits, else its file name first and then the end of
    its folder (a long path cut at the screen's edge hid the name, the part that tells ISOs apart)."""
    if len(path) <= width:
        return path
    folder, name = path.rsplit("/", 1) if "/" in path else ("", path)
    room = width - len(name) - len(" in ...")
    if room >= 8:
        return f"{name} in ...{folder[-room:]}"
    return name if len(name) <= width else name[:width - 3] + "..."


class VmScreen(FirstBootStep):
    STEP = 4
    detecting = False

    class Detected(Message):
        """The OS osinfo found on the ISO (empty: none), or why not."""

        def __init__(self, found: str, error: str) -> None:
            super().__init__()
            self.found, self.error = found, error

    class Planned(Message):
        """The VM planned from what was typed, or the errors per field."""

        def __init__(self, planned, errors: dict[str, str]) -> None:
            super().__init__()
            self.planned, self.errors = planned, errors

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
                yield Select([(iso_label(p), p) for p in isos], prompt="none (add one later)", id="iso",
                             value=choices.get("iso") or Select.NULL)
            yield Static("", id="iso-error", classes="field-error")
            os_id = choices.get("typed", {}).get("os") or choices.get("os")
            with Horizontal(classes="field"):
                yield Label(LABELS["os"])
                self.os_options = self._os_options(os_id)
                yield Select(self.os_options, prompt="detect it from the ISO", id="os",
                             value=os_id or Select.NULL)
                yield Static("", id="os-hint", classes="hint")
            yield Static("", id="os-error", classes="field-error")
            for key, placeholder in (("name", "desktop"), ("memory", "automatic, e.g. 8GiB"),
                                     ("cpus", "automatic"), ("disk_size", "automatic, e.g. 128GiB")):
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

    def _os_options(self, *also: str | None) -> list[tuple[str, str]]:
        """osinfo's pick list, with any OS named elsewhere (the answer file, a detection) that it lacks."""
        options = list(self.app.session.os_choices())
        known = {value for _, value in options}
        return [(name, name) for name in dict.fromkeys(a for a in also if a and a not in known)] + options

    def _start_detect(self, iso: str) -> None:
        self.detecting = True
        self.query_one("#os-hint", Static).update("detecting...")
        self._detect(iso)

    def _os(self) -> str:
        value = self.query_one("#os", Select).value
        return str(value) if value not in (Select.NULL, None) else ""

    def _set_os(self, os_id: str) -> None:
        select = self.query_one("#os", Select)
        if os_id and os_id not in {value for _, value in self.os_options}:
            self.os_options = self._os_options(os_id)
            select.set_options(self.os_options)
        select.value = os_id or Select.NULL

    def on_mount(self) -> None:
        self.query_one("#iso", Select).focus()
        self._show_os_source()
        vm = self.app.config.vm
        if vm is not None and (vm.os or vm.iso) and not self.app.choices.get("asked_vm"):
            # [firstboot.vm] answers this screen: go on to the review (Esc comes back here to change it).
            self.app.choices["asked_vm"] = True
            self.call_after_refresh(self.query_one("#next", Button).press)
            return
        if self.query_one("#iso", Select).value not in (Select.NULL, None) and not self._os():
            self._start_detect(str(self.query_one("#iso", Select).value))

    def action_back(self) -> None:
        self.remember()
        super().action_back()

    def remember(self) -> None:
        """What is typed, as typed (empty stays "automatic"), kept for when this screen opens again."""
        iso = self.query_one("#iso", Select).value
        self.app.choices["iso"] = str(iso) if iso not in (Select.NULL, None) else None
        self.app.choices["typed"] = {"os": self._os(), **{k: self.query_one(f"#{k}", Input).value
                                                           for k in FIELDS[2:]}}

    def _detected_from(self) -> str | None:
        """The ISO the OS shown was detected from; None when the person picked it (or picked another)."""
        iso, os_id = self.app.choices.get("detected") or (None, None)
        current = self.query_one("#iso", Select).value
        return iso if os_id and os_id == self._os() and iso == (str(current) if current not in (Select.NULL, None)
                                                               else None) else None

    def _show_os_source(self) -> None:
        if not self.detecting:
            self.query_one("#os-hint", Static).update("detected from the ISO" if self._detected_from() else "")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "os":  # picked by the person, or set by a detection: the hint says which
            self._show_os_source()
            return
        # Another ISO: what was said about the last one no longer holds, the OS detected from it included.
        self.query_one("#iso-error", Static).update("")
        self.query_one("#os-hint", Static).update("")
        iso, os_id = self.app.choices.get("detected") or (None, None)
        if os_id and self._os() == os_id and iso != (str(event.value) if event.value not in (Select.NULL, None)
                                                     else None):
            self._set_os("")
        if event.value not in (Select.NULL, None) and str(event.value) != iso:
            self._start_detect(str(event.value))

    @work(thread=True, exclusive=True, group="detect")
    def _detect(self, iso: str) -> None:
        worker = get_current_worker()  # cancelled when this screen goes (Back, Quit): the detection is killed
        try:
            found, error = self.app.session.detect(Path(iso), cancelled=lambda: worker.is_cancelled), ""
        except Exception as exc:
            found, error = "", getattr(exc, "message", str(exc))
        if not worker.is_cancelled:
            self.post_message(self.Detected(found, error))

    def on_vm_screen_detected(self, message: Detected) -> None:
        found, error = message.found, message.error
        iso = self.query_one("#iso", Select).value
        self.detecting = False
        self.query_one("#os-hint", Static).update("")
        if found:
            self.app.choices["detected"] = (str(iso), found)
            self._set_os(found)
            self.query_one("#iso-error", Static).update("")
        else:
            self.app.choices["detected"] = None
            self.query_one("#iso-error", Static).update(error + ": pick the OS below")
        self._show_os_source()

    def _values(self) -> tuple[dict, dict[str, str]]:
        values: dict = {}
        errors: dict[str, str] = {}
        iso = self.query_one("#iso", Select).value
        values["iso"] = str(iso) if iso not in (Select.NULL, None) else None
        values["os"] = self._os() or None
        values["detected_from"] = self._detected_from()
        for key in FIELDS[2:]:
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
            errors["os"] = "choose an ISO to detect the OS from, or pick the OS"
        return values, errors

    def _show_errors(self, errors: dict[str, str]) -> None:
        """Each error beside its field; one about a value this screen has no field for (the GPU chosen on the
        graphics screen, say) with the general ones, never dropped."""
        shown = {key: errors.get(key, "") for key in FIELDS}
        shown["general"] = "; ".join(text for key, text in errors.items() if key not in FIELDS and text)
        for key, text in shown.items():
            self.query_one(f"#{key}-error", Static).update(text)

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
                  "gpu_address": self.app.choices.get("gpu_address"), "store": str(self.app.session.store)}
        try:
            request = Request(**{k: v for k, v in fields.items() if v is not None})
            planned, errors = self.app.session.plan(request, values["os"], detected_from=values["detected_from"]), {}
        except ValidationError as exc:
            planned = None
            errors = {str(e["loc"][0]) if e["loc"] else "general": in_words(e) for e in exc.errors()}
        except Exception as exc:
            planned, errors = None, {field_of(str(exc)): str(exc)}
        self.post_message(self.Planned(planned, errors))

    def on_vm_screen_planned(self, message: Planned) -> None:
        planned, errors = message.planned, message.errors
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
        self.app.push_screen(self.app.step("review"))
