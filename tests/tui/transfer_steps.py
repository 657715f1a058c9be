"""Steps of the Transfers screen tests: fill the new-transfer form with keys, read the rows.

- ``open_form(pilot)``: ``t`` then ``n``; the source path has the focus.
- ``fill(pilot, source=(host, path), destinations=[(host, path), ...], rate=..., compress=...)``:
  fills the form the way a person does (tab, the pickers' menus, ctrl+n for a row, paths pasted).
- ``advanced(pilot, parallel="2", encrypt=...)``: opens the form's Advanced section with keys and
  types into its fields (pastes the long ones).
- ``start(pilot)``: ctrl+s in the form; the id of the transfer it started, once its row shows.
- ``row_state(app, transfer_id)`` / ``wait_state(app, transfer_id, state)``: the STATE cell.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input, Select

from difpipe_tui.app import DifpipeApp
from difpipe_tui.core.transfer.codecs import COMPRESS_CHOICES
from difpipe_tui.screens.transfer_form import LOCAL, EndRow, TransferForm
from difpipe_tui.screens.transfers import TransfersScreen
from tests.tui.helpers import type_text, wait_until


async def open_form(pilot) -> TransferForm:
    await pilot.press("t")
    assert isinstance(pilot.app.screen, TransfersScreen)
    await pilot.press("n")
    await pilot.pause()
    form = pilot.app.screen
    assert isinstance(form, TransferForm)
    return form


async def pick(pilot, select: Select, values: list[str], value: str) -> None:
    """Choose ``value`` among ``values`` (the picker's options, in order) with its menu:
    enter opens it, arrows move, enter picks."""
    select.focus()
    await pilot.pause()
    steps = values.index(value) - values.index(select.value)
    await pilot.press("enter", *(["down"] * steps if steps > 0 else ["up"] * -steps), "enter")
    await pilot.pause()
    assert select.value == value


async def paste(pilot, box: Input, text: str) -> None:
    """Paste ``text`` into ``box``, as a terminal's bracketed paste delivers it (a long path
    typed key by key costs a test seconds)."""
    box.post_message(events.Paste(text))
    await pilot.pause()


async def fill_end(pilot, row: EndRow, host: str, path: str) -> None:
    form = pilot.app.screen
    await pick(pilot, row.query_one(Select), [*form.hosts, LOCAL], host)
    await pilot.press("tab")
    assert pilot.app.focused is row.query_one(Input)
    await paste(pilot, row.query_one(Input), path)
    assert row.query_one(Input).value == path


async def fill(
    pilot,
    *,
    source: tuple[str, str],
    destinations: list[tuple[str, str]],
    rate: str = "",
    compress: str | None = None,
) -> TransferForm:
    form = pilot.app.screen
    assert isinstance(form, TransferForm)
    await fill_end(pilot, form.ends()[0], *source)
    for i, (host, path) in enumerate(destinations):
        if i > 0:
            await pilot.press("ctrl+n")
            await pilot.pause()
        await fill_end(pilot, form.ends()[i + 1], host, path)
    if compress is not None:
        await pick(pilot, form.query_one("#compress", Select), list(COMPRESS_CHOICES), compress)
    if rate:
        form.query_one("#rate", Input).focus()
        await type_text(pilot, rate)
    return form


async def advanced(pilot, **fields: str) -> TransferForm:
    """Open the Advanced section (its title, enter) and type ``fields`` (input id → text)."""
    form = pilot.app.screen
    assert isinstance(form, TransferForm)
    section = form.query_one("#advanced")
    if section.collapsed:
        section.query_one("CollapsibleTitle").focus()
        await pilot.press("enter")
        await pilot.pause()
    assert not section.collapsed
    for name, text in fields.items():
        box = form.query_one(f"#{name}", Input)
        box.focus()
        box.value = ""
        if len(text) > 8:
            await paste(pilot, box, text)
        else:
            await type_text(pilot, text)
        assert box.value == text
    return form


def transfers_screen(app: DifpipeApp) -> TransfersScreen:
    screen = app.get_screen_stack("transfers")[0]
    assert isinstance(screen, TransfersScreen)
    return screen


def row_state(app: DifpipeApp, transfer_id: str) -> str | None:
    table = transfers_screen(app).query_one("#transfers")
    if transfer_id not in table.shown_keys:
        return None
    labels = [str(column.label) for column in table.columns.values()]
    return str(table.get_row(transfer_id)[labels.index("STATE")])


async def wait_state(app: DifpipeApp, transfer_id: str, state: str, timeout: float = 60) -> None:
    try:
        await wait_until(lambda: row_state(app, transfer_id) == state, timeout)
    except AssertionError:
        now = row_state(app, transfer_id)
        raise AssertionError(
            f"transfer {transfer_id}: {now}, not {state}, after {timeout}s"
        ) from None


def started_id(app: DifpipeApp) -> str:
    """The transfer the last form started (the newest transfer the bridge owns or ran)."""
    return max(transfers_screen(app).live.transfers.values(), key=lambda v: v.started).id


async def start(pilot) -> str:
    """ctrl+s in the form; the id of the transfer it started, once its row shows."""
    await pilot.press("ctrl+s")
    app = pilot.app
    await wait_until(lambda: not isinstance(app.screen, TransferForm), timeout=30)
    assert isinstance(app.screen, TransfersScreen)
    await wait_until(lambda: transfers_screen(app).live.transfers)
    transfer_id = started_id(app)
    await wait_until(lambda: row_state(app, transfer_id) is not None)
    return transfer_id
