"""The host form's jump field: a chain of jump hosts, outermost first, as ``jump`` in the config.

The chain reads ``direct`` or ``bastion → inner``; the picker adds a hop (the hosts not in the
chain yet), ``✕`` takes the last one off. The config's parser checks the chain when the form
saves (a missing host, a host twice, the host itself).
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Select, Static


class JumpChain(Horizontal):
    DEFAULT_CSS = """
    JumpChain { width: 1fr; height: 1; }
    JumpChain #jump-chain { width: auto; max-width: 1fr; margin-right: 1; }
    JumpChain #f-jump { width: 18; }
    JumpChain #jump-pop { min-width: 3; margin-left: 1; }
    """

    class Changed(Message):
        """The chain changed."""

    def __init__(self, hosts: Iterable[str], chain: Iterable[str] = (), **kw):
        super().__init__(**kw)
        self.hosts = list(hosts)
        self.chain = list(chain)

    def compose(self) -> ComposeResult:
        yield Static(self._text(), id="jump-chain", markup=False)
        yield Select(self._options(), prompt="+ hop", compact=True, id="f-jump")
        yield Button("✕", compact=True, id="jump-pop", tooltip="take the last hop off")

    def _text(self) -> str:
        return " → ".join(self.chain) if self.chain else "direct"

    def _options(self) -> list[tuple[str, str]]:
        return [(h, h) for h in self.hosts if h not in self.chain]

    def _show(self) -> None:
        self.query_one("#jump-chain", Static).update(self._text())
        self.query_one("#f-jump", Select).set_options(self._options())
        self.query_one("#jump-pop", Button).disabled = not self.chain
        self.post_message(self.Changed())

    def on_mount(self) -> None:
        self.query_one("#jump-pop", Button).disabled = not self.chain

    @on(Select.Changed, "#f-jump")
    def _picked(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str) and event.value not in self.chain:
            self.chain.append(event.value)
            self._show()

    @on(Button.Pressed, "#jump-pop")
    def _pop(self, event: Button.Pressed) -> None:
        event.stop()
        if self.chain:
            self.chain.pop()
            self._show()
