"""The hosts of the config: what each is and has, checked on demand, added, edited, removed.

The table starts from the store's last check of every host and follows the engine's events
(checks, connections opened, lost or failed, the config reloaded after a change made here or
elsewhere) without losing the cursor or the filter; a config file changed elsewhere that does
not load is an error notification. Verbs act on the selected row: ``c`` checks it, ``C``
checks all, ``a`` adds, ``enter`` edits, ``d`` deletes (after a yes), ``i`` imports from an
ssh_config file after a preview. Changes are written to the config file atomically, other
entries kept, and the engine reloads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from ..core import config as cfg
from ..core.events import (
    ConfigRejected,
    ConfigReloaded,
    ConnectionOpened,
    ConnectionRestored,
    Event,
    HostChecked,
)
from ..core.hostcheck import HostCheckResult
from ..widgets import FilterTable, Row
from .base import FilteredScreen, ScreenCommand
from .confirm import ConfirmScreen
from .host_facts import HostFacts, detail_text, row_cells
from .host_form import HostForm
from .host_import import ImportScreen
from .live import HostsLive

if TYPE_CHECKING:
    from ..app import DifpipeApp

COLUMNS = ("HOST", "ROLE", "ADDRESS", "STATE", "LATENCY", "OS/ARCH", "FREE", "LAST SEEN", "TOOLS")


class HostsTable(FilterTable):
    """The table leaves ``enter`` to the screen (edit), so the footer and help show it."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action != "select_cursor"


class HostsScreen(FilteredScreen):
    FILTER_TABLE = "#hosts-table"
    DEFAULT_CSS = """
    HostsScreen #host-detail {
        height: auto; padding: 0 1; border-top: solid $border-blurred; color: $text;
    }
    """
    MUTATING = frozenset({"add_host", "edit_host", "delete_host", "import_hosts"})
    BINDINGS = [
        Binding("c", "check_host", "Check", id="hosts.check"),
        Binding("C", "check_all", "Check all", id="hosts.check_all"),
        Binding("a", "add_host", "Add", id="hosts.add"),
        Binding("enter", "edit_host", "Edit", id="hosts.edit"),
        Binding("d", "delete_host", "Delete", id="hosts.delete"),
        Binding("i", "import_hosts", "Import", id="hosts.import"),
        Binding("slash", "open_filter", "Filter", id="hosts.filter"),
        Binding("escape", "escape", "Back", show=False, id="hosts.escape"),
    ]

    def compose(self) -> ComposeResult:
        yield self.header()
        yield HostsTable(*COLUMNS, id="hosts-table")
        yield Static("", id="host-detail", markup=False)
        yield Input(placeholder="words in any column   (enter keeps it, esc clears)", id="filter")
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
        self.facts: dict[str, HostFacts] = {}
        self.live = HostsLive(self.bridge.config)
        self._refresh_rows()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self._load_store()  # checks made elsewhere (the overview) are in the store

    def _load_store(self) -> None:
        self.run_engine(
            self.bridge.host_statuses, what="read host status", then=self._loaded, exclusive=False
        )

    def _loaded(self, statuses: dict) -> None:
        views = self.live.hosts
        # a host being checked, or with news newer than its stored check, keeps what it shows
        self.live.load(
            {
                n: s
                for n, s in statuses.items()
                if n in views
                and views[n].state != "checking"
                and (views[n].checked_at is None or s.checked_at >= views[n].checked_at)
            }
        )
        for name, status in statuses.items():
            self.facts[name] = HostFacts.from_status(status)
        self._refresh_rows()

    # -- the table -----------------------------------------------------------------------

    @property
    def table(self) -> FilterTable:
        return self.query_one("#hosts-table", FilterTable)

    @property
    def selected(self) -> str | None:
        row = self.table.selected
        return None if row is None else row.key

    def _refresh_rows(self) -> None:
        config = self.bridge.config
        views = self.live.hosts
        up, down = self.live.count("up"), self.live.count("down")
        self.sub_title = (
            f"Hosts · {len(views)} · {up} up · {down} down"
            + (f" · filter: {self.table.filter_text}" if self.table.filter_text else "")
            + (" · read-only" if self.readonly else "")
        )
        self.table.set_rows(
            Row(name, row_cells(config.hosts[name], view, self.facts.get(name)))
            for name, view in views.items()
            if name in config.hosts
        )
        self._render_detail()

    def _render_detail(self) -> None:
        name = self.selected
        detail = self.query_one("#host-detail", Static)
        config = self.bridge.config
        if name is None or name not in config.hosts:
            detail.update(
                "No hosts. a adds one, i imports ~/.ssh/config." if not config.hosts else ""
            )
            return
        detail.update(detail_text(config, name, self.live.hosts[name], self.facts.get(name)))

    @on(DataTable.RowHighlighted, "#hosts-table")
    def _highlighted(self) -> None:
        self._render_detail()

    @on(DataTable.RowSelected, "#hosts-table")
    def _selected(self) -> None:
        if self.check_action("edit_host", ()):
            self.action_edit_host()

    def _reloaded(self, select: str | None = None) -> None:
        """The config changed: rows for the hosts it has now, states kept."""
        old = self.live.hosts
        self.live = HostsLive(self.bridge.config)
        for name, view in self.live.hosts.items():
            if name in old:
                self.live.hosts[name] = old[name]
                old[name].role = view.role
        self._refresh_rows()
        if select:
            self.select(select)

    def select(self, name: str) -> None:
        table = self.table
        if name not in table.shown_keys and table.filter_text:
            self.set_filter("")
        if name in table.shown_keys:
            table.move_cursor(row=table.shown_keys.index(name), animate=False)
            table.focus()

    # -- events --------------------------------------------------------------------------

    def filter_changed(self) -> None:
        self._refresh_rows()

    def on_events(self, events: list[Event]) -> None:
        config = [e for e in events if isinstance(e, ConfigReloaded | ConfigRejected)]
        if any(isinstance(e, ConfigReloaded) for e in config):
            self._reloaded()  # hosts added, edited or removed elsewhere: the CLI, a console
        if config and isinstance(config[-1], ConfigRejected):  # and still wrong
            self._rejected(config[-1])
        changed = False
        for event in events:
            if self.live.apply(event):
                changed = True
                seen = isinstance(event, ConnectionOpened | ConnectionRestored) or (
                    isinstance(event, HostChecked) and event.reachable
                )
                if seen:
                    self.facts.setdefault(event.host or "", HostFacts()).last_seen = event.ts
        if changed:
            self._refresh_rows()

    def _rejected(self, event: ConfigRejected) -> None:
        error = (
            event.error if event.error.startswith(event.path) else f"{event.path}: {event.error}"
        )
        self.notify(
            f"{error}\nFix the file: the console keeps the hosts it has until then.",
            title="Config file changed but does not load",
            severity="error",
            timeout=15,
            markup=False,
        )

    # -- checks --------------------------------------------------------------------------

    def action_check_host(self) -> None:
        name = self.selected
        if name is None:
            self.notify("No host selected.", severity="warning")
            return
        self.check_host(name)

    def check_host(self, name: str) -> None:
        if self._known(name):
            self._check([name], what=f"check {name}")

    def action_check_all(self) -> None:
        names = list(self.bridge.config.hosts)
        if not names:
            self.notify("No hosts in the config: a adds one, i imports.", severity="warning")
            return
        self._check(names, what="check hosts")

    def _check(self, names: list[str], *, what: str) -> None:
        for name in names:
            self.live.hosts[name].state = "checking"
        self._refresh_rows()
        self.run_engine(self.bridge.check_hosts, names, what=what, then=self._checked)

    def _checked(self, results: list[HostCheckResult]) -> None:
        for r in results:
            view = self.live.hosts.get(r.name)
            if view is None:
                continue
            view.state = "up" if r.reachable else "down"
            view.latency_ms, view.checked_at, view.error = r.latency_ms, r.checked_at, r.error
            self.facts.setdefault(r.name, HostFacts()).update(r)
        self._refresh_rows()
        down = [r for r in results if not r.reachable]
        if len(results) == 1:
            r = results[0]
            if down:
                self.notify(f"{r.error}", title=f"{r.name} is down", severity="error", timeout=10)
            else:
                self.notify(f"{r.latency_ms} ms, login by {r.auth_method}", title=f"{r.name} is up")
        elif down:
            lines = "\n".join(f"{r.error}" for r in down)
            self.notify(lines, title=f"{len(down)} of {len(results)} hosts down", severity="error")
        else:
            self.notify(f"All {len(results)} hosts up.", title="Check hosts")

    # -- changes -------------------------------------------------------------------------

    def action_add_host(self) -> None:
        self.app.push_screen(HostForm(self.bridge.config), self._saved)

    def action_edit_host(self) -> None:
        name = self.selected
        if name is not None:
            self.edit_host(name)

    def edit_host(self, name: str) -> None:
        if self._known(name):
            self.app.push_screen(HostForm(self.bridge.config, name), self._saved)

    def _known(self, name: str) -> bool:
        """Whether ``name`` is a host of the config; if so, its row is selected."""
        if name not in self.bridge.config.hosts or name not in self.live.hosts:
            self.notify(f"{name}: no such host in the config.", severity="warning")
            return False
        self.select(name)
        return True

    def _saved(self, host: cfg.Host | None) -> None:
        if host is not None:
            self._reloaded(select=host.name)
            self.notify(f"Saved to {self.bridge.config_path}.", title=f"Host {host.name}")

    def action_delete_host(self) -> None:
        name = self.selected
        if name is not None:
            self.delete_host(name)

    def delete_host(self, name: str) -> None:
        """Remove ``name`` from the config, after a yes."""
        if not self._known(name):
            return
        host = self.bridge.config.hosts[name]
        question = f"Delete host {name} ({host.address})?"
        detail = f"It is removed from {self.bridge.config_path}; the other hosts are kept."

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_engine(
                    self.bridge.remove_host, name, what=f"delete host {name}", then=self._removed
                )

        self.app.push_screen(ConfirmScreen(question, detail, verb="Delete"), answered)

    def _removed(self, _: cfg.Config) -> None:
        self._reloaded()
        self.notify(f"Removed from {self.bridge.config_path}.", title="Host deleted")

    def action_import_hosts(self) -> None:
        self.app.push_screen(ImportScreen(self.bridge.config), self._imported)

    def _imported(self, added: list[str] | None) -> None:
        if added:
            self._reloaded(select=added[0])
            noun = "host" if len(added) == 1 else "hosts"
            self.notify(", ".join(added), title=f"Imported {len(added)} {noun}")

    # -- palette -------------------------------------------------------------------------

    @classmethod
    def palette(cls, console: DifpipeApp) -> Iterable[ScreenCommand]:
        yield ScreenCommand(
            "Check all hosts", "connect to every host", cls.action_check_all, "check_all"
        )
        yield ScreenCommand("Add host", "a new host in the config", cls.action_add_host, "add_host")
        yield ScreenCommand(
            "Import hosts from ~/.ssh/config",
            "preview, then add the hosts that are new",
            cls.action_import_hosts,
            "import_hosts",
        )
        for name, host in console.bridge.config.hosts.items():
            where = f"{host.role} · {host.address}"
            yield ScreenCommand(f"Host: {name}", where, lambda s, n=name: s.select(n))
            yield ScreenCommand(
                f"Check host {name}", where, lambda s, n=name: s.check_host(n), "check_host", False
            )
            yield ScreenCommand(
                f"Edit host {name}", where, lambda s, n=name: s.edit_host(n), "edit_host", False
            )
            yield ScreenCommand(
                f"Delete host {name}",
                f"{where} · asks first",
                lambda s, n=name: s.delete_host(n),
                "delete_host",
                False,
            )
