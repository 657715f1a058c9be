"""One transfer in full: its ends, how it moves, and each destination's bytes, digest or error.

It follows the transfer live (the Transfers screen below keeps folding events while this is
open) and, once the transfer has ended, shows the engine's result for a transfer started in
this console: the verify algorithm, the digest, where a resume started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..core.transfer.job import CopyResult
from ..render import human_bytes
from ..widgets import badge, human_rate
from ..widgets.keys import key_hint
from ..widgets.progress import duration
from .live import TransferView

if TYPE_CHECKING:
    from .transfers import TransfersScreen

REFRESH_SECONDS = 0.5


class TransferDetailsScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    TransferDetailsScreen { align: center middle; }
    TransferDetailsScreen > VerticalScroll {
        width: 110; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close", id="transfer_details.close")]

    def __init__(self, owner: TransfersScreen, transfer_id: str):
        super().__init__()
        self.owner = owner
        self.transfer_id = transfer_id
        self.result: CopyResult | None = None
        self._asked = False

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = f"Transfer {self.transfer_id}"
            box.border_subtitle = f"{key_hint(self, 'transfer_details.close', first=True)} closes"
            yield Static(id="details-summary")
            yield Static(id="details-destinations")

    def on_mount(self) -> None:
        self._redraw()
        self.set_interval(REFRESH_SECONDS, self._tick)

    def _tick(self) -> None:
        self.owner.catch_up()  # the screen below is covered: keep its fold current
        self._redraw()

    @property
    def view(self) -> TransferView | None:
        return self.owner.live.transfers.get(self.transfer_id)

    def _redraw(self) -> None:
        view = self.view
        if view is None:
            self.query_one("#details-summary", Static).update("This transfer is no longer listed.")
            return
        if view.finished and self.result is None and not self._asked:
            self._asked = True
            self.run_worker(self._fetch_result(), exit_on_error=False)
        self.query_one("#details-summary", Static).update(summary(view, self.result))
        self.query_one("#details-destinations", Static).update(destinations(view, self.result))

    async def _fetch_result(self) -> None:
        bridge = self.owner.bridge
        self.result = await bridge.call(bridge.transfer_result, self.transfer_id)
        self._redraw()


def summary(view: TransferView, result: CopyResult | None) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("state", badge(view.status))
    table.add_row("source", Text(view.source))
    size = "unknown" if view.total is None else human_bytes(view.total)
    table.add_row("size", size)
    table.add_row("strategy", view.strategy or "-")
    codec = view.codec or "-"
    if view.reason:
        codec += f": {view.reason}"
    table.add_row("compression", Text(codec))
    if result is not None:
        table.add_row("verify", result.verify)
        if result.digest:
            table.add_row("digest", Text(result.digest))
    if view.finished:
        moved = max(view.bytes.values(), default=0)
        rate = moved / view.seconds if view.seconds else 0.0
        table.add_row(
            "moved", f"{human_bytes(moved)} in {duration(view.seconds)} ({human_rate(rate)})"
        )
    else:
        table.add_row("rate", f"{human_rate(view.rate)}, ETA {duration(view.eta)}")
    if view.retries:
        table.add_row("retries", str(view.retries))
    if view.error:
        table.add_row("error", Text(view.error, style="bold"))
    return table


def destinations(view: TransferView, result: CopyResult | None) -> Group:
    """Each destination: its state, bytes, checkpoint, then its full digest or its error."""
    by_dest = {d.destination: d for d in result.destinations} if result else {}
    lines: list[Text] = [Text("Destinations", style="bold")]
    for dest in view.destinations:
        res = by_dest.get(dest)
        moved = res.bytes if res is not None else view.bytes.get(dest, 0)
        line = Text.assemble(badge(view.dest_state(dest)), " ", dest, f"  {human_bytes(moved)}")
        if saved := view.checkpoints.get(dest):
            line.append(f"  checkpoint at {human_bytes(saved)}", style="dim")
        if resumed := view.resumed.get(dest) or (res.resumed_from if res else 0):
            line.append(f"  resumed from {human_bytes(resumed)}", style="dim")
        lines.append(line)
        if error := view.errors.get(dest) or (res.error if res else None):
            lines.append(Text.assemble("  error  ", (error, "bold")))
        elif digest := view.digests.get(dest) or (res.digest if res else None):
            lines.append(Text(f"  digest {digest}"))
    return Group(*lines)
