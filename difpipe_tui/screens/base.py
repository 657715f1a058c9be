"""What every console screen over the engine shares.

- :attr:`EngineScreen.bridge` is the engine (:class:`~difpipe_tui.bridge.EngineBridge`).
- :meth:`EngineScreen.run_engine` runs a coroutine on the engine thread as a worker of the
  screen (popping the screen cancels it); a :class:`DifpipeError` becomes a notification naming
  the host and what to do, any other exception an "internal error" one: never a traceback.
- :meth:`EngineScreen.on_events` receives the engine's events in batches while the screen is
  the one shown; a screen that was hidden or covered by a modal catches up when it comes back.
- Actions listed in :attr:`EngineScreen.MUTATING` are hidden and refused in ``--readonly``.
- :meth:`EngineScreen.palette` lists commands offered in the command palette on every screen:
  choosing one shows this screen, then runs the command on it; :meth:`EngineScreen.engine_palette`
  does the same for commands over what the engine thread holds (running transfers, the store),
  read once each time the palette opens (:class:`EngineCommands`). A command that runs an
  action in :attr:`EngineScreen.MUTATING` is not offered in ``--readonly``.
- :class:`TableFilter` gives a screen or a modal ``/`` over its tables; :class:`FilteredScreen`
  is an :class:`EngineScreen` with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on
from textual.app import SystemCommand
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.widgets import Header, Input
from textual.worker import Worker, WorkerState

from ..core.errors import DifpipeError
from ..core.events import Event
from ..widgets import FilterTable, KeysFooter

if TYPE_CHECKING:
    from ..app import DifpipeApp
    from ..bridge import EngineBridge, Work


@dataclass(frozen=True)
class ScreenCommand:
    """A command of a screen offered on every screen: ``run(screen)`` once it is shown.
    ``action`` names the screen action it runs, so that ``--readonly`` hides it when that
    action is in the screen's :attr:`~EngineScreen.MUTATING`. A command with ``listed`` False
    is found by typing but not listed in the open palette (the verbs of each host, transfer
    and checkpoint: with fifty hosts they would bury everything else)."""

    title: str
    help: str
    run: Callable[[Any], None]
    action: str = ""
    listed: bool = True


def offered(
    console: DifpipeApp, screen: type[EngineScreen], commands: Iterable[ScreenCommand]
) -> Iterator[ScreenCommand]:
    """``commands`` without those that change something when the console is read-only."""
    for command in commands:
        if not (console.readonly and command.action in screen.MUTATING):
            yield command


class EngineScreen(Screen):
    MUTATING: ClassVar[frozenset[str]] = frozenset()
    TITLE_TEXT: ClassVar[str] = ""

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self._seen = 0

    @property
    def console(self) -> DifpipeApp:
        return self.app  # type: ignore[return-value]

    @property
    def bridge(self) -> EngineBridge:
        return self.console.bridge

    @property
    def readonly(self) -> bool:
        return self.console.readonly

    def header(self) -> Header:
        return Header(icon="≋")

    def footer(self) -> KeysFooter:
        return KeysFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.readonly and action in self.MUTATING)

    def commands(self) -> Iterable[SystemCommand]:
        """Commands for the command palette while this screen is shown."""
        return ()

    @classmethod
    def palette(cls, console: DifpipeApp) -> Iterable[ScreenCommand]:
        """Commands for the command palette on every screen; each runs on this screen."""
        return ()

    @classmethod
    async def engine_palette(cls, console: DifpipeApp) -> Iterable[ScreenCommand]:
        """Like :meth:`palette`, from what only the engine thread may read (``bridge.call``)."""
        return ()

    # -- engine events -----------------------------------------------------------------------

    def on_events(self, events: list[Event]) -> None:
        """New engine events, oldest first. Override; update widgets in place."""

    def catch_up(self) -> None:
        if not self.is_mounted:
            return
        new = self.console.event_log.since(self._seen)
        if new:
            self._seen = new[-1][0]
            self.on_events([event for _, event in new])

    def on_screen_resume(self) -> None:
        self.catch_up()

    @on(events.ScreenResume)
    def _keep_styles(self, event: events.ScreenResume) -> None:
        """Shown again: its styles are current, so skip Textual's restyle of every node.

        Textual restyles the whole screen when a mode comes back, a third of a switch. A class
        or focus change on a hidden screen restyles its node at once, and a theme changed
        meanwhile is applied by ``switch_mode`` itself; this handler runs before Screen's own.
        """
        event.refresh_styles = False

    # -- engine work -------------------------------------------------------------------------

    def run_engine(
        self,
        work: Work[Any],
        *args: Any,
        what: str,
        then: Callable[[Any], None] | None = None,
        exclusive: bool = True,
    ) -> Worker[Any]:
        """Run ``work`` on the engine thread; ``then(result)`` runs on the UI thread after.

        ``what`` names the work in notifications ("check hosts"). With ``exclusive`` a second
        call cancels the first one still running.
        """

        async def job() -> Any:
            try:
                result = await self.bridge.call(work, *args)
            except DifpipeError as err:
                self.console.show_error(err, what)
                return None
            if then is not None:
                then(result)
            return result

        # the worker calls ``job`` when it starts: one cancelled before that (a second
        # exclusive call) leaves no coroutine behind that was made and never awaited
        return self.run_worker(
            job,
            name=what,
            group=what,
            description=what,
            exclusive=exclusive,
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.console.show_error(event.worker.error, event.worker.description)


class EngineCommands(Provider):
    """The palette's commands from every screen's :meth:`EngineScreen.engine_palette`, read
    when the palette opens; a screen whose read fails offers none (the palette stays usable)."""

    async def startup(self) -> None:
        from . import SCREENS

        console: DifpipeApp = self.app  # type: ignore[assignment]
        self.found: list[tuple[ScreenCommand, Callable[[], Any]]] = []
        for spec in SCREENS:
            try:
                commands = await spec.screen.engine_palette(console)
            except DifpipeError:
                continue
            for c in offered(console, spec.screen, commands):
                self.found.append((c, partial(console.run_on_screen, spec.id, c.run)))

    async def discover(self) -> Hits:
        for c, run in self.found:
            if c.listed:
                yield DiscoveryHit(c.title, run, help=c.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for c, run in self.found:
            if (score := matcher.match(c.title)) > 0:
                yield Hit(score, matcher.highlight(c.title), run, help=c.help)


class TableFilter:
    """Mixed into a :class:`Screen`: ``/`` filters the :class:`FilterTable` widgets that
    :attr:`FILTER_TABLE` selects (one table, or every table of the screen at once) through a
    hidden ``#filter`` input: typing narrows them, enter keeps the filter, esc clears it
    (:meth:`close_filter`).

    For screens and modals alike: ``class Preview(TableFilter, ModalScreen[...])``. Not a
    Screen itself, so that the screen's own base gives it its CSS (a modal's dimmed backdrop)."""

    FILTER_TABLE: ClassVar[str] = ""
    _filter_from: FilterTable | None = None  # the table focused when the filter opened

    def filter_changed(self) -> None:
        """The filter text changed (the tables have already applied it)."""

    @property
    def filter_text(self) -> str:
        return self._filter_box().value

    def set_filter(self, text: str) -> None:
        """Filter by ``text`` (the box shows it, or hides when it is empty)."""
        box = self._filter_box()
        box.value = text
        box.display = bool(text)
        self._apply_filter(text)

    def close_filter(self) -> bool:
        """Clear and hide the filter if it is shown; whether it was."""
        box = self._filter_box()
        if not box.display:
            return False
        box.value = ""
        box.display = False
        self._apply_filter("")
        self._filter_home().focus()
        return True

    def _filter_box(self) -> Input:
        return self.query_one("#filter", Input)

    def _filter_tables(self) -> list[FilterTable]:
        return list(self.query(self.FILTER_TABLE).results(FilterTable))

    def _filter_home(self) -> FilterTable:
        """The table the keys go back to: the one focused when ``/`` was pressed."""
        tables = self._filter_tables()
        return self._filter_from if self._filter_from in tables else tables[0]

    def _apply_filter(self, text: str) -> None:
        for table in self._filter_tables():
            table.set_filter(text)
        self.filter_changed()

    def action_open_filter(self) -> None:
        if isinstance(self.focused, FilterTable):
            self._filter_from = self.focused
        box = self._filter_box()
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._apply_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        event.stop()
        box = self._filter_box()
        box.display = bool(box.value)
        self._filter_home().focus()


class FilteredScreen(TableFilter, EngineScreen):
    """An :class:`EngineScreen` with a :class:`TableFilter`: esc clears the filter, or goes
    back when no filter is shown."""

    def action_escape(self) -> None:
        if not self.close_filter():
            self.console.action_back()
