"""The DifPipe console: one factory, :func:`build_app`, for ``difpipe``, Pilot and snapshot tests.

Top-level screens are Textual modes listed in :data:`difpipe_tui.screens.SCREENS`, one key
each. ``esc`` goes back, ``?`` shows the keys of the current screen, ``ctrl+p`` reaches every
screen, theme, host, transfer, checkpoint and their actions by name (none that changes
anything in ``--readonly``). Keys of screens and modals are remapped with ``[ui.keymap]``
(binding id = key), the theme chosen with ``[ui] theme`` and remembered when switched at run
time, unless read-only.
"""

from __future__ import annotations

import difflib
import gc
import importlib
import pkgutil
import sys
import threading
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.dom import DOMNode
from textual.message import Message
from textual.screen import Screen

from .bridge import EngineBridge, EventLog
from .core.config import ConfigKeyError
from .core.errors import DifpipeError, UsageError
from .core.events import Event
from .core.sysinfo import SysInfo, SysSource
from .idlegc import EVERY, IdleCollector
from .screens import DEFAULT_SCREEN, SCREENS, EngineScreen
from .screens.base import EngineCommands, offered
from .screens.help import HelpScreen
from .themes import CSS_PATH, THEMES

SWITCH_MASK = 0.005
"""Seconds frames are held when switching to a screen that is already mounted."""

BATCH_SECONDS = 0.1
"""After a batch of engine events is shown, the next gathers this long (then goes at once)."""

SWITCH_INTERVAL = 0.02
"""Seconds a busy thread keeps the GIL before handing it over (Python's default is 0.005).

The engine thread moves bytes while the UI thread draws. With 5 ms turns a screen switch,
~40 ms of drawing, waits behind the engine at every turn and takes twice as long; with 20 ms
turns the median switch during a full-speed transfer went from ~110 ms to ~65 ms
(bench/console.py). A transfer loses nothing: its buffers outlast 20 ms."""


class EngineEvents(Message):
    """Engine events are waiting in :attr:`DifpipeApp._pending` (one message per batch)."""


class DifpipeApp(App[None]):
    TITLE = "DifPipe"
    CSS_PATH = CSS_PATH
    MODES = {spec.id: spec.screen for spec in SCREENS}
    DEFAULT_MODE = DEFAULT_SCREEN
    COMMANDS = App.COMMANDS | {EngineCommands}
    BINDINGS = [
        *(
            Binding(spec.key, f"show('{spec.id}')", spec.title, id=spec.binding_id)
            for spec in SCREENS
        ),
        Binding("question_mark", "help", "Keys", id="app.help"),
        Binding("escape", "back", "Back", show=False, id="app.back"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        bridge: EngineBridge,
        *,
        readonly: bool = False,
        theme: str | None = None,
        sysinfo: SysSource | None = None,
        owns_bridge: bool = False,
    ):
        super().__init__()
        self.bridge = bridge
        self.readonly = readonly
        self.sysinfo: SysSource = sysinfo or SysInfo()
        self.event_log = EventLog()
        self._owns_bridge = owns_bridge
        self._pending: list[Event] = []
        self._pending_lock = threading.Lock()
        self._flush_posted = False
        self._history: list[str] = []
        self._mounted_switch = False
        self._collector: IdleCollector | None = None
        self._unsubscribe = bridge.subscribe(self._from_engine)
        for t in THEMES.values():
            self.register_theme(t)
        self.theme = theme or bridge.config.ui.theme
        self.set_keymap(dict(bridge.config.ui.keymap))

    def run(self, *args, **kwargs):  # type: ignore[override]
        """Run in a terminal, tuned for an interactive process (:meth:`tune_runtime`)."""
        self.tune_runtime()
        return super().run(*args, **kwargs)

    def tune_runtime(self) -> None:
        """Longer GIL turns (:data:`SWITCH_INTERVAL`); once the first screen is drawn, the
        objects alive then (modules, widgets, caches: ~120,000) moved out of the collector's
        reach (a full collection walked them all, up to ~200 ms during which nothing drew;
        after ``gc.freeze()`` it walks only what came later); and full collections only while
        nobody types (:class:`~difpipe_tui.idlegc.IdleCollector`). Process-wide, so not for
        tests that build many apps in one process."""
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._collector = IdleCollector()

    def on_mount(self) -> None:
        if self._collector is not None:
            self.call_after_refresh(gc.freeze)
            self._collector.start()
            self.set_interval(EVERY, self._collector.tick)

    async def on_event(self, event: events.Event) -> None:
        if self._collector is not None and isinstance(event, events.InputEvent):
            self._collector.input_seen()
        await super().on_event(event)

    # -- engine events: engine thread -> one message per batch -> the shown screen ------------

    def _from_engine(self, event: Event) -> None:
        with self._pending_lock:
            self._pending.append(event)
            if self._flush_posted:
                return
            self._flush_posted = True
        self.post_message(EngineEvents())

    def on_engine_events(self, _: EngineEvents) -> None:
        self._deliver()

    def _deliver(self) -> None:
        """Hand the waiting events to the log and the shown screen, then let the next ones
        gather for :data:`BATCH_SECONDS`: ten transfers send ~40 progress events a second,
        each a wakeup of the UI thread, and the screens draw at most twice a second."""
        with self._pending_lock:
            batch, self._pending = self._pending, []
            if not batch:
                self._flush_posted = False  # quiet: the next event is posted at once
                return
        self.event_log.extend(batch)
        if not self.screen_stack:  # not yet shown, or closing: screens catch up from the log
            with self._pending_lock:
                self._flush_posted = False
            return
        if isinstance(self.screen, EngineScreen):
            self.screen.catch_up()
        self.set_timer(BATCH_SECONDS, self._deliver)

    # -- navigation ----------------------------------------------------------------------------

    def switch_mode(self, mode: str):  # type: ignore[override]
        """Textual masks a mode switch by holding frames for 50 ms, time for a new screen to
        mount. A screen already mounted (screens stay alive) is ready at once: hold 5 ms.

        That screen first takes the events it missed while hidden: on ``ScreenResume`` they
        came after its first frame, and the new rows cost a second layout and paint."""
        self._mounted_switch = mode in self._screen_stacks
        if self._mounted_switch and mode != self.current_mode:
            shown = self._screen_stacks[mode][-1]
            if isinstance(shown, EngineScreen):
                shown.catch_up()
        try:
            return super().switch_mode(mode)
        finally:
            self._mounted_switch = False

    def delay_update(self, delay: float = 0.05) -> None:
        super().delay_update(SWITCH_MASK if self._mounted_switch else delay)

    def action_show(self, screen_id: str) -> None:
        if screen_id != self.current_mode:
            self._history.append(self.current_mode)
            self.switch_mode(screen_id)

    async def run_on_screen(self, screen_id: str, run: Callable[[EngineScreen], None]) -> None:
        """Show the screen ``screen_id`` (mounted if it was not yet), then ``run`` it."""
        if screen_id != self.current_mode:
            self._history.append(self.current_mode)
            await self.switch_mode(screen_id)
        screen = self.screen_stack[0]
        if isinstance(screen, EngineScreen):
            run(screen)

    def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif self._history:
            self.switch_mode(self._history.pop())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title != "Theme":  # ours are listed one by one below
                yield command
        for spec in SCREENS:
            yield SystemCommand(
                f"Screen: {spec.title}", spec.help, lambda s=spec.id: self.action_show(s)
            )
        for spec in SCREENS:
            for command in offered(self, spec.screen, spec.screen.palette(self)):
                run = partial(self.run_on_screen, spec.id, command.run)
                yield SystemCommand(command.title, command.help, run, command.listed)
        remember = "for this session (read-only)" if self.readonly else "and remember it"
        for name in THEMES:
            yield SystemCommand(
                f"Theme: {name}", f"switch {remember}", lambda n=name: setattr(self, "theme", n)
            )
        if isinstance(screen, EngineScreen):
            yield from screen.commands()

    # -- themes --------------------------------------------------------------------------------

    def watch_theme(self, name: str) -> None:
        """Remember a theme switched at run time, unless read-only: then it lasts the session."""
        if self.readonly:
            return
        if name in THEMES and name != self.bridge.config.ui.theme and self.is_running:
            future = self.bridge.submit(self.bridge.save_ui, theme=name)
            future.add_done_callback(self._saved)

    def _saved(self, future) -> None:  # on the engine thread
        if (err := future.exception()) is not None:
            self.call_from_thread(self.show_error, err, "save the theme")

    # -- errors --------------------------------------------------------------------------------

    def show_error(self, error: BaseException, what: str | None = None) -> None:
        """A notification naming what failed, the host and what to do; never a traceback."""
        title = f"Could not {what}" if what else "Error"
        if isinstance(error, DifpipeError):
            self.notify(error.render(), title=title, severity="error", timeout=10)
        else:
            self.notify(
                f"{type(error).__name__}: {error} (a bug; please report it)",
                title=title,
                severity="error",
                timeout=10,
            )

    async def on_unmount(self) -> None:
        self._unsubscribe()
        if self._collector is not None:
            self._collector.stop()
        if self._owns_bridge:
            self.bridge.close()


def binding_ids() -> set[str]:
    """Every binding id that ``[ui.keymap]`` may remap: the app's and those of every screen,
    modal and widget in the console's packages (each module imported to find them)."""
    ids = set()
    for cls in (DifpipeApp, *_console_nodes()):
        for klass in cls.__mro__:
            for binding in vars(klass).get("BINDINGS", ()):
                if isinstance(binding, Binding) and binding.id:
                    ids.add(binding.id)
    return ids


def _console_nodes() -> list[type[DOMNode]]:
    """The screens and widgets defined in :mod:`difpipe_tui.screens` and
    :mod:`difpipe_tui.widgets`, modals and forms included."""
    from . import screens, widgets

    for package in (screens, widgets):
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            importlib.import_module(module.name)
    found, todo = [], [DOMNode]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith((screens.__name__, widgets.__name__)):
                found.append(sub)
    return found


def check_ui(theme: str, keymap: dict[str, str]) -> None:
    """Refuse an unknown theme or binding id, naming the key at fault."""
    if theme not in THEMES:
        raise ConfigKeyError("ui.theme", f"no theme {theme!r}", hint=f"known: {', '.join(THEMES)}")
    known = binding_ids()
    for binding_id in keymap:
        if binding_id not in known:
            close = difflib.get_close_matches(binding_id, known, n=1)
            guess = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigKeyError(
                f"ui.keymap.{binding_id}",
                "no such binding",
                hint=f"{guess}known: {', '.join(sorted(known))}",
            )


def build_app(
    *,
    config_path: str | Path | None = None,
    home: str | Path | None = None,
    readonly: bool = False,
    theme: str | None = None,
    bridge: EngineBridge | None = None,
    sysinfo: SysSource | None = None,
) -> DifpipeApp:
    """The console. Without ``bridge`` one is started (config from ``config_path`` / ``home``)
    and closed with the app; a given ``bridge`` stays open for its owner to close.

    Raises :class:`~difpipe_tui.core.errors.ConfigError` for a bad config, theme or keymap.
    """
    owns = bridge is None
    if bridge is None:
        bridge = EngineBridge(config_path, home=home)
    try:
        ui = bridge.config.ui
        check_ui(ui.theme, dict(ui.keymap))
        if theme is not None and theme not in THEMES:
            raise UsageError(f"--theme: no theme {theme!r}", hint=f"known: {', '.join(THEMES)}")
        return DifpipeApp(bridge, readonly=readonly, theme=theme, sysinfo=sysinfo, owns_bridge=owns)
    except BaseException:
        if owns:
            bridge.close()
        raise
