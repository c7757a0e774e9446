"""The disk to install on, with what is on each disk."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Static

from .encryption import EncryptionScreen
from .failure import FailureScreen
from .widgets import Step

if TYPE_CHECKING:
    from storage.probe import Disk


def contents(disk: Disk) -> str:
    """What is on a disk, in words: the partition table, each partition's filesystem, the systems found."""
    from phyllome_installer.core.sizes import human_size

    if not disk.has_data:
        return "Contents: empty (no partition table, no filesystem)."
    if not disk.partitions:
        return f"Contents: {disk.fstype or disk.table or 'unknown data'} on the whole disk."
    parts = [f"{p.number}: {p.fstype or 'no filesystem'} {human_size(p.size)}" + (f" {p.label!r}" if p.label else "")
             for p in disk.partitions]
    found = f" Found: {', '.join(disk.os)}." if disk.os else ""
    return f"Contents: {disk.table or 'partitions'}, {'; '.join(parts)}.{found}"


class DiskScreen(Step):
    STEP = 2
    HELP = ("Choose the disk to install on. The WHOLE disk is erased.\n\n"
            "The disk you started the installer from is not listed. Disks that are in use, read-only or too "
            "small are shown with the reason and cannot be chosen.")

    class Probed(Message):
        def __init__(self, disks: list[Disk], error: str = "") -> None:
            super().__init__()
            self.disks = disks
            self.error = error

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with Vertical(classes="body"):
            yield Static("Which disk should hold Phyllome OS? Everything on it will be erased.", classes="title")
            yield Static("Looking for disks ...", id="status")
            yield DataTable(id="disks", cursor_type="row", zebra_stripes=False)
            yield Static("", id="contents")
            yield Static("", id="reason", classes="warning")
            yield Button("Use this disk", id="next", variant="primary", disabled=True)
        yield from self.compose_footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Disk", "Model", "Size", "Serial", "Bus", "What is on it")
        self.disks: list[Disk] = []
        self.probe()

    @work(thread=True, exclusive=True)
    def probe(self) -> None:
        try:
            machine = self.app.machine()
            # Every disk, the boot medium too: listed with its reason and refused (the live medium is a disk).
            self.post_message(self.Probed(list(machine.disks)))
        except Exception as exc:  # shown on screen; the log has the details
            self.post_message(self.Probed([], str(exc)))

    def on_disk_screen_probed(self, message: Probed) -> None:
        from storage.probe import human_size

        table = self.query_one(DataTable)
        table.clear()
        self.disks = message.disks
        for disk in self.disks:
            contents = ", ".join(disk.os) or (f"{len(disk.partitions)} partitions" if disk.has_data else "empty")
            if disk.flags:
                contents = "NOT USABLE: " + "; ".join(disk.flags.values())
            table.add_row(disk.path.rsplit("/", 1)[-1], disk.model[:22], human_size(disk.size), disk.serial[-12:],
                          disk.transport, contents[:40], key=disk.path)
        status = self.query_one("#status", Static)
        if message.error:  # before the engine: the Failure screen, Retry probes again
            status.update("Could not list the disks.")
            self.probe_failed = True
            self.app.push_screen(FailureScreen("probe the disks", f"Could not list the disks: {message.error}",
                                               touched=False, pops=1))
            return
        if not self.disks:
            status.update("No disk can hold Phyllome OS on this machine.")
        else:
            status.update(f"{len(self.disks)} disk(s). Use the arrows and Enter.")
            chosen = self.app.draft.get("disk")
            usable = [row for row, disk in enumerate(self.disks) if disk.usable]
            for row, disk in enumerate(self.disks):
                if disk.path == chosen or (chosen is None and usable and row == usable[0]):
                    table.move_cursor(row=row)
            table.focus()
            self._show(table.cursor_row)

    def on_screen_resume(self) -> None:
        if getattr(self, "probe_failed", False):  # back from the Failure screen's Retry
            self.probe_failed = False
            self.query_one("#status", Static).update("Looking for disks ...")
            self.probe()

    def _show(self, row: int) -> None:
        if not 0 <= row < len(self.disks):
            return
        disk = self.disks[row]
        self.query_one("#contents", Static).update(contents(disk))
        reason = self.query_one("#reason", Static)
        button = self.query_one("#next", Button)
        reason.update("" if disk.usable else f"{disk.path} cannot be used: " + "; ".join(disk.flags.values()))
        button.disabled = not disk.usable

    @on(DataTable.RowHighlighted)
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show(event.cursor_row)

    @on(DataTable.RowSelected)
    def selected(self, event: DataTable.RowSelected) -> None:
        self._show(event.cursor_row)
        self.choose()

    @on(Button.Pressed, "#next")
    def choose(self) -> None:
        row = self.query_one(DataTable).cursor_row
        if 0 <= row < len(self.disks) and self.disks[row].usable:
            self.app.draft["disk"] = self.disks[row].path
            self.app.chosen_disk = self.disks[row]
            self.app.push_screen(EncryptionScreen())
