"""Progress as text for table cells: a bar with its percentage, a rate sparkline, short names.

Cells of a :class:`~difpipe_tui.widgets.table.FilterTable` are updated in place, so these
return plain :class:`rich.text.Text` rather than widgets.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

BLOCKS = "▁▂▃▄▅▆▇█"


def bar(done: int, total: int | None, *, width: int = 10, finished: bool = False) -> Text:
    """``██████░░░░  60%``; without a total, the bytes so far are all there is to show."""
    if not total:
        if finished:
            return Text("█" * width + " 100%", style="$success")
        return Text("░" * width + "    ?", style="dim")
    fraction = max(0.0, min(1.0, done / total))
    filled = int(fraction * width)
    text = Text()
    text.append("█" * filled, style="$success" if fraction >= 1 else "bold")
    text.append("░" * (width - filled), style="dim")
    text.append(f" {100 * fraction:3.0f}%")
    return text


def sparkline(values: Sequence[float], width: int = 12) -> str:
    """The last ``width`` values as block characters, scaled to the largest of them."""
    tail = list(values)[-width:]
    if not tail:
        return ""
    top = max(tail)
    if top <= 0:
        return BLOCKS[0] * len(tail)
    steps = len(BLOCKS) - 1
    return "".join(BLOCKS[round(steps * max(v, 0.0) / top)] for v in tail)


def duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h07m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def shorten(end: str, width: int) -> str:
    """``host:/a/very/long/path/file`` as ``host:…/path/file`` within ``width`` characters."""
    if len(end) <= width:
        return end
    host, sep, path = end.partition(":")
    if not sep or "/" in host:  # a local path
        host, sep, path = "", "", end
    head = f"{host}{sep}…"
    keep = max(width - len(head), 1)
    return head + path[-keep:]
