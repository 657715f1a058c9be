"""Import hosts from an OpenSSH client config, after a preview of what will happen.

The preview lists every host the file describes as ``new`` (will be added) or ``exists``
(already in the config, kept as it is), and what the import skipped or changed, with why
(wildcard patterns, ``Match`` blocks, bad values). ``enter`` in the path field reads another
file; ``/`` on the preview filters it; ``ctrl+s`` adds the new hosts (one atomic write); ``esc``
clears the filter, or cancels. The screen dismisses
with the names added, or None.
"""

from __future__ import annotations

import re
from functools import partial

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ..core import config as cfg
from ..core.errors import DifpipeError
from ..widgets import FilterTable, Row
from ..widgets.keys import key_hint
from .base import TableFilter

DEFAULT_SSH_CONFIG = "~/.ssh/config"
COLUMNS = ("HOST", "ACTION", "DETAIL")
_HOST_IN_MESSAGE = re.compile(r"Host '([^']+)'|host \"([^\"]+)\"|of \"([^\"]+)\"")


def preview_rows(
    config: cfg.Config, hosts: list[cfg.Host], messages: list[str], source: str
) -> list[tuple[str, str, str]]:
    """``(host, action, detail)``: the hosts found, then what the import skipped or noted."""
    rows = []
    for host in hosts:
        if host.name in config.hosts:
            rows.append((host.name, "exists", "already in the config; kept as it is"))
            continue
        where = f"{host.user}@{host.address}" if host.user else host.address
        if host.port != 22:
            where += f":{host.port}"
        if host.jump:
            where += " via " + " → ".join(host.jump)
        rows.append((host.name, "new", where))
    for message in messages:
        match = _HOST_IN_MESSAGE.search(message)
        name = next((g for g in match.groups() if g), "") if match else ""
        action = "skipped" if "skipped" in message or "ignored" in message else "note"
        rows.append((name, action, _short(message, source)))
    return rows


def _short(message: str, source: str) -> str:
    """``SOURCE:12: skipped Host '*': why`` as ``line 12: why`` (the row says the rest)."""
    text = message.removeprefix(f"{source}:")
    if text != message:
        text = "line " + text
    return re.sub(r"skipped Host '[^']+': ", "", text)


class ImportScreen(TableFilter, ModalScreen[list[str] | None]):
    DEFAULT_CSS = """
    ImportScreen { align: center middle; }
    ImportScreen > Vertical {
        width: 110; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    ImportScreen #import-path-row { height: 1; margin-bottom: 1; }
    ImportScreen #import-path-row > Label { width: 6; color: $text-muted; }
    ImportScreen #import-path { width: 1fr; }
    ImportScreen FilterTable { background: $surface; }
    ImportScreen #import-summary { height: auto; margin-top: 1; }
    ImportScreen #import-error { color: $error; height: auto; }
    ImportScreen Horizontal#import-buttons { height: auto; align-horizontal: right; }
    ImportScreen Button { margin-left: 2; min-width: 12; }
    """
    FILTER_TABLE = "#import-preview"
    BINDINGS = [
        Binding("ctrl+s", "save", "Add new hosts", id="hostimport.save"),
        Binding("slash", "open_filter", "Filter", id="hostimport.filter"),
        Binding("escape", "cancel", "Cancel", id="hostimport.cancel"),
    ]

    def __init__(self, config: cfg.Config, path: str = DEFAULT_SSH_CONFIG):
        super().__init__()
        self.config = config
        self.path = path
        self.hosts: list[cfg.Host] = []

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Import from ssh config"
            box.border_subtitle = (
                f"enter read file · {key_hint(self, 'hostimport.filter')} filter · "
                f"{key_hint(self, 'hostimport.save')} add new hosts · "
                f"{key_hint(self, 'hostimport.cancel')} cancel"
            )
            with Horizontal(id="import-path-row"):
                yield Label("File")
                yield Input(self.path, id="import-path", compact=True)
            yield FilterTable(*COLUMNS, id="import-preview")
            yield Input(
                placeholder="words in any column   (enter keeps it, esc clears)", id="filter"
            )
            yield Static("", id="import-error", markup=False)
            yield Static("", id="import-summary", markup=False)
            with Horizontal(id="import-buttons"):
                yield Button("Cancel", id="import-cancel")
                yield Button(
                    f"Add ({key_hint(self, 'hostimport.save')})",
                    id="import-save",
                    variant="primary",
                    disabled=True,
                )

    def on_mount(self) -> None:
        self.query_one("#import-error").display = False
        self.query_one("#filter").display = False
        self.query_one("#import-path", Input).focus()
        self.load(self.path)

    @property
    def new_hosts(self) -> list[cfg.Host]:
        return [h for h in self.hosts if h.name not in self.config.hosts]

    # -- reading the file ----------------------------------------------------------------

    @on(Input.Submitted, "#import-path")
    def _path_entered(self, event: Input.Submitted) -> None:
        self.load(event.value.strip() or DEFAULT_SSH_CONFIG)

    def load(self, path: str) -> None:
        self.path = path
        self.run_worker(
            partial(self._read, path), group="read", exclusive=True, exit_on_error=False
        )

    async def _read(self, path: str) -> None:
        bridge = self.app.bridge  # type: ignore[attr-defined]
        try:
            hosts, messages = await bridge.call(bridge.read_ssh_config, path)
        except DifpipeError as err:
            self.hosts = []
            self._show([], f"{err.render()}: type another file above and press enter")
            return
        self.hosts = hosts
        self._show(preview_rows(self.config, hosts, messages, path), "")

    def _show(self, rows: list[tuple[str, str, str]], error: str) -> None:
        table = self.query_one("#import-preview", FilterTable)
        table.clear(columns=True)  # new columns: their widths follow the new rows
        table.add_columns(*COLUMNS)
        table.set_rows(Row(str(i), row) for i, row in enumerate(rows))
        box = self.query_one("#import-error", Static)
        box.update(error)
        box.display = bool(error)
        new = len(self.new_hosts)
        counts = {a: sum(1 for r in rows if r[1] == a) for a in ("exists", "skipped", "note")}
        summary = self.query_one("#import-summary", Static)
        summary.display = not error
        summary.update(
            f"{self.path}: {new} new · {counts['exists']} already in the config · "
            f"{counts['skipped']} skipped · {counts['note']} notes"
        )
        button = self.query_one("#import-save", Button)
        save = key_hint(self, "hostimport.save")
        button.label = f"Add {new} host{'s' if new != 1 else ''} ({save})"
        button.disabled = not new

    # -- saving --------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "import-save":
            self.action_save()
        else:
            self.action_cancel()

    def action_save(self) -> None:
        if not self.new_hosts:
            self.notify("Nothing new to add.", severity="warning")
            return
        self.run_worker(self._save, group="save", exclusive=True, exit_on_error=False)

    async def _save(self) -> None:
        bridge = self.app.bridge  # type: ignore[attr-defined]
        try:
            added = await bridge.call(bridge.import_hosts, self.hosts)
        except DifpipeError as err:
            box = self.query_one("#import-error", Static)
            box.update(err.render())
            box.display = True
            return
        self.dismiss(added)

    def action_cancel(self) -> None:
        if not self.close_filter():
            self.dismiss(None)
