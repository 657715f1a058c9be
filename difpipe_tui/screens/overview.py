"""The overview: hosts up or down, transfers and their total rate, this machine, latest events.

``/`` filters its three tables at once: ``edge`` keeps that host, its transfers and its events.
"""

from __future__ import annotations

import itertools

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.widgets import Input, Label

from ..core.events import ConfigReloaded, Event
from ..core.hostcheck import HostCheckResult
from ..render import human_bytes
from ..widgets import FilterTable, RateGraph, Row, badge, describe, human_rate, local_time
from .base import FilteredScreen
from .live import HostsLive, TransfersLive

REFRESH_SECONDS = 2.0
LATEST_EVENTS = 50
#: Events too frequent to be news: the overview leaves them to the transfers panel and the
#: Events screen, so that a busy transfer does not scroll everything else away.
ROUTINE = frozenset({"transfer.progress", "remote.command"})


class OverviewScreen(FilteredScreen):
    FILTER_TABLE = "FilterTable"  # all three tables at once
    BINDINGS = [
        Binding("c", "check_hosts", "Check hosts", id="overview.check"),
        Binding("slash", "open_filter", "Filter", id="overview.filter"),
        Binding("escape", "escape", "Back", show=False, id="overview.escape"),
    ]

    def compose(self) -> ComposeResult:
        yield self.header()
        with Grid(id="overview"):
            with Vertical(id="hosts-panel", classes="panel"):
                yield FilterTable("HOST", "ROLE", "STATE", "LATENCY", "CHECKED", id="hosts")
            with Vertical(id="system-panel", classes="panel") as box:
                box.border_title = "This machine"
                yield RateGraph("CPU", id="cpu")
                yield RateGraph("MEM", id="mem")
                yield RateGraph("RSS", id="rss")
                yield RateGraph("OUT", id="net-out")
                yield RateGraph("IN", id="net-in")
            with Vertical(id="transfers-panel", classes="panel"):
                yield FilterTable("ID", "STATE", "SOURCE", "TO", "DONE", "RATE", id="transfers")
                yield Label("No transfer since the console started.", id="no-transfers")
            with Vertical(id="events-panel", classes="panel") as box:
                box.border_title = "Latest events"
                yield FilterTable("TIME", "KIND", "HOST", "DETAILS", id="latest")
        yield Input(placeholder="words in any table   (enter keeps it, esc clears)", id="filter")
        yield self.footer()

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
        self._title()
        self._row_keys = itertools.count()
        self.hosts = HostsLive(self.bridge.config)
        self.transfers = TransfersLive()
        self._render_hosts()
        self._render_transfers()
        self._sample()
        self.run_engine(self.bridge.host_statuses, what="read host status", then=self._loaded)
        self.set_interval(REFRESH_SECONDS, self._tick)
        self.catch_up()

    def _title(self) -> None:
        text = self.filter_text
        self.sub_title = (
            "Overview"
            + (f" · filter: {text}" if text else "")
            + (" · read-only" if self.readonly else "")
        )

    def filter_changed(self) -> None:
        self._title()

    def _loaded(self, statuses: dict) -> None:
        self.hosts.load(statuses)
        self._render_hosts()

    def _tick(self) -> None:
        if not self.is_current:  # hidden, or a modal covers it: nothing to draw
            return
        self._sample()
        self._render_transfers()

    # -- events --------------------------------------------------------------------------

    def on_events(self, events: list[Event]) -> None:
        if any(isinstance(e, ConfigReloaded) for e in events):
            self._reload_hosts()
        hosts = [e for e in events if self.hosts.apply(e)]
        transfers = [e for e in events if self.transfers.apply(e)]
        if hosts:
            self._render_hosts()
        if any(e.kind != "transfer.progress" for e in transfers):
            self._render_transfers()  # progress alone waits for the next tick
        self._render_latest([e for e in events if e.kind not in ROUTINE])

    def _reload_hosts(self) -> None:
        """The config changed: a row for each host it has now, known states kept."""
        old = self.hosts.hosts
        self.hosts = HostsLive(self.bridge.config)
        for name, view in self.hosts.hosts.items():
            if name in old:
                old[name].role = view.role
                self.hosts.hosts[name] = old[name]
        self._render_hosts()

    # -- actions -------------------------------------------------------------------------

    def action_check_hosts(self) -> None:
        if not self.hosts.hosts:
            self.notify("No hosts in the config.", severity="warning")
            return
        for view in self.hosts.hosts.values():
            view.state = "checking"
        self._render_hosts()
        self.run_engine(self.bridge.check_hosts, what="check hosts", then=self._checked)

    def _checked(self, results: list[HostCheckResult]) -> None:
        down = [r for r in results if not r.reachable]
        for r in results:  # the results are authoritative even if events were dropped
            view = self.hosts.hosts.get(r.name)
            if view is not None:
                view.state = "up" if r.reachable else "down"
                view.latency_ms, view.checked_at, view.error = r.latency_ms, r.checked_at, r.error
        self._render_hosts()
        if down:
            lines = "\n".join(f"{r.error}" for r in down)
            self.notify(lines, title=f"{len(down)} of {len(results)} hosts down", severity="error")
        else:
            self.notify(f"All {len(results)} hosts up.", title="Check hosts")

    # -- rendering -----------------------------------------------------------------------

    def _render_hosts(self) -> None:
        views = list(self.hosts.hosts.values())
        panel = self.query_one("#hosts-panel")
        up, down = self.hosts.count("up"), self.hosts.count("down")
        rest = len(views) - up - down
        panel.border_title = f"Hosts · {up} up · {down} down" + (f" · {rest} ?" if rest else "")
        self.query_one("#hosts", FilterTable).set_rows(
            Row(
                v.name,
                (
                    v.name,
                    v.role,
                    badge(v.state),
                    "-" if v.latency_ms is None else f"{v.latency_ms:.1f} ms",
                    local_time(v.checked_at),
                ),
            )
            for v in views
        )

    def _render_transfers(self) -> None:
        views = list(self.transfers.transfers.values())
        running = self.transfers.running
        panel = self.query_one("#transfers-panel")
        panel.border_title = (
            f"Transfers · {len(running)} running · {human_rate(self.transfers.rate)}"
        )
        self.query_one("#no-transfers").display = not views
        table = self.query_one("#transfers", FilterTable)
        table.display = bool(views)
        table.set_rows(
            Row(
                t.id,
                (
                    t.id[:8],
                    badge(t.status),
                    t.source,
                    ", ".join(t.destinations),
                    _done(t.done_bytes, t.total),
                    human_rate(t.rate) if t.rate else "-",
                ),
            )
            for t in reversed(views)
        )

    def _render_latest(self, events: list[Event]) -> None:
        table = self.query_one("#latest", FilterTable)
        rows = (_event_row(next(self._row_keys), e) for e in events)
        table.append_rows(rows, limit=LATEST_EVENTS)

    def _sample(self) -> None:
        s = self.console.sysinfo.sample()
        self.query_one("#cpu", RateGraph).push(s.cpu_percent, f"{s.cpu_percent:5.1f} %")
        mem_text = f"{human_bytes(s.mem_used)} {s.mem_percent:.0f}%"
        self.query_one("#mem", RateGraph).push(s.mem_percent, mem_text)
        self.query_one("#rss", RateGraph).push(float(s.rss), human_bytes(s.rss))
        self.query_one("#net-out", RateGraph).push(s.net_sent_rate, human_rate(s.net_sent_rate))
        self.query_one("#net-in", RateGraph).push(s.net_recv_rate, human_rate(s.net_recv_rate))


def _done(done: int, total: int | None) -> str:
    if total:
        return f"{100 * done / total:.0f}% of {human_bytes(total)}"
    return human_bytes(done)


def _event_row(n: int, event: Event) -> Row:
    return Row(
        f"e{n}", (local_time(event.ts), event.kind, event.host or "", describe(event)), event
    )
