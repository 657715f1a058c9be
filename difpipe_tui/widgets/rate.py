"""A labelled value with a sparkline of its recent history."""

from __future__ import annotations

from collections import deque

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Sparkline

HISTORY = 60


class RateGraph(Horizontal):
    """``LABEL  value  ▁▂▅▇``; :meth:`push` adds a sample and updates in place."""

    DEFAULT_CSS = """
    RateGraph { height: 1; }
    RateGraph > .rate-label { width: 4; color: $text-muted; }
    RateGraph > .rate-value { width: 13; }
    RateGraph > Sparkline { width: 1fr; min-width: 4; }
    """

    def __init__(self, label: str, *, id: str | None = None):
        super().__init__(id=id)
        self._label = label
        self._history: deque[float] = deque(maxlen=HISTORY)

    def compose(self) -> ComposeResult:
        yield Label(self._label, classes="rate-label")
        yield Label("-", classes="rate-value")
        yield Sparkline([], summary_function=max)

    def push(self, value: float, text: str) -> None:
        if not self._history:  # a flat line until there is history to show
            self._history.extend([value] * HISTORY)
        self._history.append(value)
        self.query_one(".rate-value", Label).update(text, layout=False)
        self.query_one(Sparkline).data = list(self._history)
