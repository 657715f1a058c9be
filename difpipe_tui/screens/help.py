"""``?``: the keys of the screen below, read from the same bindings the footer shows."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from ..widgets.keys import key_hint


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 64; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="help.close"),
    ]

    def __init__(self, target: Screen):
        super().__init__()
        self.target = target

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = f"Keys · {self.target.sub_title or self.target.title or ''}"
            box.border_subtitle = f"{key_hint(self, 'help.close', first=True)} closes"
            yield Static(self._table(), id="help-keys")

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for title, rows in self.sections().items():
            if rows:
                table.add_row(Text(title, style="italic"), "")
                for row in rows:
                    table.add_row(*(Text(cell) for cell in row))  # keys such as [ are no markup
        return table

    def sections(self) -> dict[str, list[tuple[str, str]]]:
        """``(key, description)`` of the target's bindings: its own, then the app's."""
        here: list[tuple[str, str]] = []
        everywhere: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        for key, active in self.target.active_bindings.items():
            binding = active.binding
            text = binding.description or binding.tooltip
            # hidden bindings without an id are Textual's own (tab, copy): left out
            if not text or not (binding.show or binding.id) or (binding.action, key) in seen:
                continue
            seen.add((binding.action, key))
            row = (self.app.get_key_display(binding), text)
            (everywhere if active.node is self.app else here).append(row)
        return {"This screen": here, "Everywhere": everywhere}
