"""Step 3: graphics. With several GPUs (an iGPU and a dGPU), which one the primary VM gets; that GPU's isolation
verdict with what blocks it, its strategies ranked for the guest family chosen here (each with its reason), and
the strategy: only what the chosen GPU can do is offered, and the plan uses only that GPU."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Label, RadioSet, Static

from phyllome_installer.core.facts import GPU_REQUESTS

from .widgets import Choice, FirstBootStep

FAMILIES = ("windows", "linux")
STRATEGIES = GPU_REQUESTS


def short(gpu) -> str:
    """A GPU in one line of a choice: "0000:0a:00.0 Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]"."""
    name = gpu.name
    for vendor in ("Advanced Micro Devices, Inc. [AMD/ATI] ", "Intel Corporation ", "NVIDIA Corporation "):
        name = name.removeprefix(vendor)
    text = f"{gpu.address} {name}"
    text = text if len(text) <= 56 else text[:55] + "~"
    return text + (" (host display)" if gpu.boot_vga else "")


def preferred(gpus: list, chosen: str | None) -> str | None:
    """The GPU chosen before, else the first that is not the host's display (a dGPU next to the iGPU)."""
    addresses = [g.address for g in gpus]
    if chosen in addresses:
        return chosen
    return next((g.address for g in gpus if not g.boot_vga), addresses[0] if addresses else None)


def describe(gpus: list) -> str:
    if not gpus:
        return "No GPU found: the VM gets a 2D virtio-gpu display."
    lines = []
    for gpu in gpus:
        if gpu.isolated:
            verdict = "ISOLATED (can be given to a VM)"
        elif gpu.iommu_group is None:
            verdict = "NOT ISOLATED: no IOMMU group (enable the IOMMU)"
        else:
            verdict = "NOT ISOLATED: shares its IOMMU group with " + ", ".join(gpu.blockers)
        lines.append(f"{gpu.address} {gpu.name}" + (" (boot display)" if gpu.boot_vga else ""))
        lines.append(f"  {verdict}")
        for strategy in gpu.strategies:
            mark = f"{strategy.rank}." if strategy.available else "no"
            lines.append(f"  {mark:>3} {strategy.name:<14} {strategy.reason}")
    return "\n".join(lines)


class GpuScreen(FirstBootStep):
    STEP = 3

    def compose(self) -> ComposeResult:
        choices = self.app.choices
        family = choices.get("family") or "windows"
        with_family = {"windows": "Windows guest", "linux": "Linux or other guest"}
        yield from self.compose_header()
        with VerticalScroll(classes="body"):
            yield Static("How the primary VM draws its screen. Strategies are ranked for the guest you choose.",
                         classes="title")
            with Horizontal(classes="field"):
                yield Label("Guest family")
                with RadioSet(id="family"):
                    for name in FAMILIES:
                        yield Choice(with_family[name], value=name == family, name=name)
            gpus = self.app.session.gpus(family)
            if len(gpus) > 1:
                picked = preferred(gpus, choices.get("gpu_address"))
                with Horizontal(classes="field"):
                    yield Label("GPU for the VM")
                    with RadioSet(id="gpu"):
                        for gpu in gpus:
                            yield Choice(short(gpu), value=gpu.address == picked, name=gpu.address)
            yield Static("", id="gpus")
            with Horizontal(classes="field"):
                yield Label("Strategy")
                with RadioSet(id="strategy"):
                    for name in STRATEGIES:
                        text = "auto: the first available above" if name == "auto" else name
                        yield Choice(text, value=name == choices.get("gpu", "auto"), name=name)
        with Horizontal(classes="buttons"):
            yield Button("Next", id="next", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self._refresh()
        self.query_one("#next", Button).focus()

    def _family(self) -> str:
        pressed = self.query_one("#family", RadioSet).pressed_button
        return pressed.name if pressed is not None and pressed.name else "windows"

    def _chosen_gpu(self) -> str | None:
        """The address of the GPU picked among several; None with one GPU or none (the plan takes any)."""
        chooser = next(iter(self.query("#gpu").results(RadioSet)), None)
        pressed = chooser.pressed_button if chooser is not None else None
        return pressed.name if pressed is not None else None

    def _refresh(self) -> None:
        self.gpus = self.app.session.gpus(self._family())
        address = self._chosen_gpu()
        considered = [g for g in self.gpus if g.address == address] if address else self.gpus
        self.query_one("#gpus", Static).update(describe(considered))
        # Only what can work with this GPU for this guest: the rest is explained above, not offered.
        available = {"auto", "virtio-gpu-2d"} | {s.name for gpu in considered for s in gpu.strategies if s.available}
        chosen = None
        for choice in self.query_one("#strategy", RadioSet).query(Choice):
            choice.display = choice.name in available
            choice.disabled = not choice.display  # the arrows skip what is not offered (they skip only disabled)
            if choice.value:
                chosen = choice
        if chosen is None or not chosen.display:
            auto = next(c for c in self.query_one("#strategy", RadioSet).query(Choice) if c.name == "auto")
            auto.value = True

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        if event.radio_set.id in ("family", "gpu"):
            self._refresh()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        pressed = self.query_one("#strategy", RadioSet).pressed_button
        self.app.choices["gpu"] = pressed.name if pressed is not None and pressed.name else "auto"
        self.app.choices["family"] = self._family()
        self.app.choices["gpu_address"] = address = self._chosen_gpu()
        self.app.result.add("graphics", f"{self.app.choices['gpu']} for a {self.app.choices['family']} guest; "
                                        f"{len(self.gpus)} GPU(s)" + (f", {address} chosen" if address else ""))
        self.app.push_screen(self.app.step("vm"))
