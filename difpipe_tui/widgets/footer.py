"""Textual's Footer, rebuilt only when the keys it shows change.

Textual's :class:`~textual.widgets.Footer` removes and mounts one widget per key each time its
screen's bindings *may* have changed: on every focus change and every time the screen is shown
again. With ~10 keys per screen that was half the cost of a screen switch. This footer compares
what it would show (keys as remapped by ``[ui.keymap]``, descriptions, enabled or not) with what
it shows already and keeps its widgets when nothing differs.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.widgets import Footer


class KeysFooter(Footer):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._shown: Hashable = None

    def _keys(self) -> Hashable:
        """What :meth:`compose` would show, as a value to compare."""
        app = self.app
        return (
            self.show_command_palette and app.ENABLE_COMMAND_PALETTE,
            tuple(
                (key, app.get_key_display(b), b.description, b.action, b.group, enabled, tooltip)
                for key, (_, b, enabled, tooltip) in self.screen.active_bindings.items()
                if b.show or key == app.COMMAND_PALETTE_BINDING
            ),
        )

    async def recompose(self) -> None:
        keys = self._keys() if self._bindings_ready and self.is_attached else None
        if keys is not None and keys == self._shown:
            return
        self._shown = keys
        await super().recompose()
