"""Reusable pieces of the console: a filterable table, a rate graph, state badges, event text,
the footer."""

from .badge import badge
from .eventtext import describe, human_rate, local_time
from .footer import KeysFooter
from .rate import RateGraph
from .table import FilterTable, Row

__all__ = [
    "FilterTable",
    "KeysFooter",
    "RateGraph",
    "Row",
    "badge",
    "describe",
    "human_rate",
    "local_time",
]
