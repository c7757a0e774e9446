"""Keys reach the field the person sees focused, in the order typed, however fast they come.

Textual forwards each key to the focused widget as it arrives; Tab (a binding the App runs when the key has
bubbled back up to it) and Enter (a field's Submitted, handled by its screen) move focus only later. A person who
types right after Tab or Enter (or a paste, or a terminal replaying type-ahead) had those keys sent to the
previous field, or lost on a list: Tab Tab "work" on the VM screen typed nothing, "work" Tab "8GiB" gave the name
"work8GiB". So both apps send one key at a time: the next is held until the last one, and every message it caused
on its way up (Submitted, Changed), has been handled by its widget, each container above it, its screen and the
App; then it goes to whatever is focused by then. A watchdog releases the keyboard if that chain is broken (a
screen removed meanwhile).
"""

from __future__ import annotations

from textual import events

WATCHDOG = 1.0
"""Seconds after which a key whose handling cannot be followed no longer holds the next ones."""


class KeysInOrder:
    """Mixed into an App before ``App``."""

    _in_flight: events.Key | None = None
    _held: list[events.Key] | None = None
    _target = None

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            if self._held is None:
                self._held = []
            if self._in_flight is not None:
                self._held.append(event)
                return
            await self._send(event)
            return
        await super().on_event(event)

    async def _send(self, event: events.Key) -> None:
        self._in_flight = event
        target = self.focused or self.screen
        await super().on_event(event)  # the App's priority bindings, else forwarded to the focused widget
        if not event.is_forwarded:  # a priority binding ran it here, at once
            await self._release(event, True)
            return
        self._target = target
        self.set_timer(WATCHDOG, lambda: self.call_next(self._release, event, True))
        self._follow(target, event, 1)

    def _follow(self, node, event: events.Key, rounds: int) -> None:
        """Queue a step behind everything ``node`` has to handle, then behind its parent's, up to the App. Twice:
        a binding the App ran for the key (Enter: a field's submit) posts to the widget again."""
        def step() -> None:
            parent = node.parent
            if parent is None or parent is self:
                self.call_next(self._release, event, rounds == 0)  # behind the key, if it bubbled up to the App
            else:
                self._follow(parent, event, rounds)

        node.call_next(step)

    async def _release(self, event: events.Key, last: bool) -> None:
        if self._in_flight is not event:
            return  # released already (the watchdog came second, or first)
        if not last and self._target is not None and self._target.is_attached:
            self._follow(self._target, event, 0)
            return
        self._in_flight = None
        if self._held:
            await self._send(self._held.pop(0))

