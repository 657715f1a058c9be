"""The console's top-level screens, one module each, registered here.

Adding a screen over a new part of the engine is one module (a subclass of
:class:`~difpipe_tui.screens.base.EngineScreen`) and one line in :data:`SCREENS`: the app makes
it a mode, binds its key (binding id ``screen.<id>``, remappable in ``[ui.keymap]``), shows it
in the footer and offers it in the command palette.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import EngineScreen
from .checkpoints import CheckpointsScreen
from .events import EventsScreen
from .hosts import HostsScreen
from .overview import OverviewScreen
from .transfers import TransfersScreen


@dataclass(frozen=True)
class ScreenSpec:
    id: str  # the mode name; the binding id is "screen.<id>"
    key: str  # the default key
    title: str
    help: str  # one line, shown in the command palette
    screen: type[EngineScreen]

    @property
    def binding_id(self) -> str:
        return f"screen.{self.id}"


SCREENS: tuple[ScreenSpec, ...] = (
    ScreenSpec("overview", "o", "Overview", "hosts, transfers, this machine", OverviewScreen),
    ScreenSpec("events", "e", "Events", "the live event log, filterable", EventsScreen),
    ScreenSpec("transfers", "t", "Transfers", "live transfers, new, pause, stop", TransfersScreen),
    ScreenSpec("hosts", "h", "Hosts", "add, edit, check, import hosts", HostsScreen),
    ScreenSpec(
        "checkpoints",
        "k",
        "Checkpoints",
        "unfinished transfers: resume, inspect, delete",
        CheckpointsScreen,
    ),
)

DEFAULT_SCREEN = SCREENS[0].id

__all__ = ["DEFAULT_SCREEN", "SCREENS", "EngineScreen", "ScreenSpec"]
