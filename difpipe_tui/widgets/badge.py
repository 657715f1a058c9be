"""A state as a word with a colour: the word alone carries the meaning (16 colours, NO_COLOR)."""

from __future__ import annotations

from rich.text import Text

STYLES = {
    "up": "bold $success",
    "running": "bold $success",
    "done": "$success",
    "down": "bold $error",
    "failed": "bold $error",
    "partial": "$warning",
    "interrupted": "$warning",
    "paused": "$warning",
    "unknown": "dim",
}


def badge(state: str) -> Text:
    """``UP``, ``DOWN``, ``RUNNING``, ... styled with the theme's variables."""
    style = STYLES.get(state, "")
    label = "?" if state == "unknown" else state.upper()
    return Text(label, style=style)
