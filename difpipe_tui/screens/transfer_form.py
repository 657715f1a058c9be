"""The new-transfer form: ends, options, an "analyze first" preview of the plan, then Start.

Source and destinations are a host picker (the config's hosts and ``local``) and a path;
``ctrl+n`` adds a destination (one source, read once, fanned out to all of them). The rarer
options of ``difpipe copy`` sit in a collapsed "Advanced" section (screens/transfer_options.py)
and are listed under the plan. The job is built and checked by
:func:`~difpipe_tui.core.transfer.job.job_from_mapping`, as for a job file, and a rate limit
by :func:`~difpipe_tui.core.transfer.ratelimit.parse_rate`; errors show on the field at fault.
Analyze (``ctrl+r``) and Start (``ctrl+s``) run on the engine thread; ``esc`` cancels a
running analysis, then closes the form. The form dismisses with the id of the transfer it
started, which from then on belongs to the engine bridge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from ..cli_copy import plan_text
from ..core.errors import DifpipeError, UsageError
from ..core.transfer.codecs import COMPRESS_CHOICES
from ..core.transfer.job import CopyJob, job_from_mapping
from ..core.transfer.ratelimit import parse_rate
from ..core.transfer.verify import DIGESTS
from ..widgets.keys import key_hint
from .transfer_options import AdvancedOptions, options_text

if TYPE_CHECKING:
    from ..app import DifpipeApp
    from ..core.transfer.plan import Plan

LOCAL = "local"


def end_text(host: str, path: str) -> str:
    """The transfer end of a picker and a path: ``host:path``, or a local path (``./a:b`` when
    a local name has a colon, as with scp)."""
    if host != LOCAL:
        return f"{host}:{path}"
    if ":" in path.split("/")[0]:
        return f"./{path}"
    return path


class EndRow(Horizontal):
    """A host picker and a path, with a label or a remove button."""

    def __init__(self, label: str, hosts: list[str], host: str, *, removable: bool, **kw: Any):
        super().__init__(classes="end-row", **kw)
        self._label, self._hosts, self._host, self._removable = label, hosts, host, removable

    def compose(self) -> ComposeResult:
        yield Label(self._label, classes="form-label")
        options = [(h, h) for h in [*self._hosts, LOCAL]]
        yield Select(options, value=self._host, allow_blank=False, compact=True, classes="end-host")
        yield Input(placeholder="/path", compact=True, classes="end-path")
        if self._removable:
            yield Button("✕", compact=True, classes="end-remove", tooltip="remove")

    @property
    def host(self) -> str:
        return str(self.query_one(".end-host", Select).value)

    @property
    def path(self) -> str:
        return self.query_one(".end-path", Input).value.strip()

    def fill(self, host: str, path: str) -> None:
        self.query_one(".end-host", Select).value = host
        self.query_one(".end-path", Input).value = path


class TransferForm(ModalScreen[str | None]):
    DEFAULT_CSS = """
    TransferForm { align: center middle; }
    TransferForm > Vertical {
        width: 100; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    TransferForm VerticalScroll { height: auto; max-height: 80vh; }
    TransferForm #destinations { height: auto; }
    TransferForm .end-row, TransferForm .form-row { height: 1; margin-top: 1; }
    TransferForm .form-label { width: 12; color: $text-muted; }
    TransferForm .end-host { width: 18; margin-right: 1; }
    TransferForm .end-path { width: 1fr; }
    TransferForm .end-remove { margin-left: 1; min-width: 3; }
    TransferForm #compress, TransferForm #verify { width: 12; margin-right: 2; }
    TransferForm #rate { width: 14; margin-right: 2; }
    TransferForm Checkbox { border: none; padding: 0; height: 1; background: $surface; }
    TransferForm .field-error { color: $error; padding-left: 12; height: auto; display: none; }
    TransferForm .field-error.-shown { display: block; }
    TransferForm #add-dest { margin-left: 12; margin-top: 1; }
    TransferForm #plan {
        height: auto; margin-top: 1; padding: 0 1; border: round $border-blurred;
    }
    TransferForm #plan.-problem { border: round $error; }
    TransferForm #form-buttons { dock: bottom; height: 2; padding-top: 1; align-horizontal: right; }
    TransferForm #form-buttons Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("ctrl+r", "analyze", "Analyze", id="transfer_form.analyze"),
        Binding("ctrl+s", "start", "Start", id="transfer_form.start"),
        Binding("ctrl+n", "add_destination", "Add destination", id="transfer_form.add"),
        Binding("escape", "close", "Cancel / close", id="transfer_form.close"),
    ]

    def __init__(self, hosts: list[str]):
        super().__init__()
        self.hosts = hosts
        self._work: Worker[Any] | None = None
        self._work_what = ""
        self._analyzed: CopyJob | None = None

    @property
    def console(self) -> DifpipeApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        first = self.hosts[0] if self.hosts else LOCAL
        second = self.hosts[1] if len(self.hosts) > 1 else first
        with Vertical() as box:
            box.border_title = "New transfer"
            analyze = key_hint(self, "transfer_form.analyze")
            box.border_subtitle = (
                f"{analyze} analyze · {key_hint(self, 'transfer_form.start')} start · "
                f"{key_hint(self, 'transfer_form.close')} close"
            )
            with VerticalScroll():
                yield EndRow("From", self.hosts, first, removable=False, id="source")
                yield Label("", id="source-error", classes="field-error")
                with Vertical(id="destinations"):
                    yield EndRow("To", self.hosts, second, removable=False)
                yield Label("", id="destinations-error", classes="field-error")
                add = key_hint(self, "transfer_form.add")
                yield Button(f"+ destination ({add})", compact=True, id="add-dest")
                with Horizontal(classes="form-row"):
                    yield Label("Compress", classes="form-label")
                    yield Select(
                        [(c, c) for c in COMPRESS_CHOICES],
                        value="auto",
                        allow_blank=False,
                        compact=True,
                        id="compress",
                    )
                    yield Label("Verify ", classes="option-label")
                    yield Select(
                        [(d, d) for d in DIGESTS],
                        value="sha256",
                        allow_blank=False,
                        compact=True,
                        id="verify",
                    )
                with Horizontal(classes="form-row"):
                    yield Label("Rate limit", classes="form-label")
                    yield Input(placeholder="none, or 20M", compact=True, id="rate")
                    yield Checkbox("Recursive (a directory)", id="recursive")
                yield Label("", id="rate-error", classes="field-error")
                yield AdvancedOptions()
                yield Static("", id="form-error", classes="field-error")
                yield Static(
                    f"Analyze ({analyze}) shows the plan before anything moves.", id="plan"
                )
            with Horizontal(id="form-buttons"):
                yield Button("Analyze", compact=True, id="analyze")
                yield Button("Start", compact=True, variant="primary", id="start")
                yield Button("Close", compact=True, id="close")

    def on_mount(self) -> None:
        self.query_one("#source .end-path", Input).focus()
        self.query_one("#plan").border_title = "Plan"

    # -- building the job ------------------------------------------------------------------

    def ends(self) -> list[EndRow]:
        return list(self.query(EndRow))

    def _clear_errors(self) -> None:
        for label in self.query(".field-error"):
            label.update("")  # type: ignore[attr-defined]
            label.remove_class("-shown")

    def _error(self, field: str, message: str) -> None:
        label = self.query_one(f"#{field}-error")
        label.update(message)  # type: ignore[attr-defined]
        label.add_class("-shown")

    def build_job(self) -> CopyJob | None:
        """The job the fields describe, or None with every error shown on its field."""
        self._clear_errors()
        ok = True
        source, *dests = self.ends()
        if not source.path:
            self._error("source", "a path on the source host is needed")
            ok = False
        missing = [str(i) for i, d in enumerate(dests, 1) if not d.path]
        if missing:
            which = "every destination" if len(dests) > 1 else "the destination"
            self._error(
                "destinations", f"a path is needed for {which} (missing: {', '.join(missing)})"
            )
            ok = False
        rate_text = self.query_one("#rate", Input).value.strip()
        rate = None
        if rate_text:
            try:
                rate = parse_rate(rate_text)
            except UsageError as err:
                self._error("rate", str(err).removeprefix("--rate-limit: "))
                ok = False
        compress = str(self.query_one("#compress", Select).value)
        options, errors = self.query_one(AdvancedOptions).read(compress)
        for field, message in errors.items():
            self._error(field, message)
        if not ok or errors:
            return None
        data = {
            "source": end_text(source.host, source.path),
            "destinations": [end_text(d.host, d.path) for d in dests],
            "compress": compress,
            "verify": str(self.query_one("#verify", Select).value),
            "rate_limit": rate,
            "recursive": self.query_one("#recursive", Checkbox).value,
            **options,
        }
        try:
            job = job_from_mapping(data, what="transfer")
        except UsageError as err:
            self._error("form", str(err))
            return None
        return job

    # -- actions -----------------------------------------------------------------------------

    def action_add_destination(self) -> None:
        box = self.query_one("#destinations")
        row = EndRow("", self.hosts, self.ends()[-1].host, removable=True)
        box.mount(row)
        self.call_after_refresh(lambda: row.query_one(".end-path", Input).focus())

    @on(Button.Pressed, ".end-remove")
    def _remove(self, event: Button.Pressed) -> None:
        event.stop()
        row = event.button.parent
        if isinstance(row, EndRow):
            row.remove()

    @on(Button.Pressed, "#add-dest")
    def _add(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_add_destination()

    @on(Button.Pressed, "#analyze")
    def _analyze_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_analyze()

    @on(Button.Pressed, "#start")
    def _start_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_start()

    @on(Button.Pressed, "#close")
    def _close_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    @on(Input.Submitted, ".end-path, #rate, AdvancedOptions Input")
    def _next_field(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self) -> None:
        if self._analyzed is not None:
            self._analyzed = None
            plan = self.query_one("#plan", Static)
            plan.border_subtitle = "fields changed since: analyze again"

    def action_analyze(self) -> None:
        job = self.build_job()
        if job is None or self._busy():
            return
        plan = self.query_one("#plan", Static)
        plan.remove_class("-problem")
        plan.border_subtitle = ""
        plan.update("Analyzing: connecting to the hosts… (esc cancels)")
        self._run(self._analyze, job, "analyze the transfer")

    async def _analyze(self, job: CopyJob) -> None:
        bridge = self.console.bridge
        result: Plan = await bridge.call(bridge.analyze, job)
        self.show_plan(result.to_dict(), options_text(job))
        self._analyzed = job
        # on a small terminal the plan is below the fold: bring its end (the verdict) into view
        body = self.query_one(VerticalScroll)
        self.call_after_refresh(body.scroll_end, animate=False)

    def show_plan(self, data: dict[str, Any], options: str = "") -> None:
        """Show a plan (``Plan.to_dict()``) and the job's ``options`` lines, problems marked."""
        problems = [d["problem"] for d in data.get("destinations", []) if d.get("problem")]
        text = Text((plan_text(data) + options).rstrip("\n"))
        text.highlight_regex(r"problem: .*", "bold")
        plan = self.query_one("#plan", Static)
        plan.update(text)
        plan.set_class(bool(problems), "-problem")
        plan.border_subtitle = (
            f"{len(problems)} problem{'s' if len(problems) > 1 else ''}" if problems else "ready"
        )

    def action_start(self) -> None:
        job = self.build_job()
        if job is None or self._busy():
            return
        self.query_one("#plan", Static).border_subtitle = "starting…"
        self._run(self._start, job, "start the transfer")

    async def _start(self, job: CopyJob) -> None:
        bridge = self.console.bridge
        transfer_id = await bridge.call(bridge.start_transfer, job)
        self.dismiss(transfer_id)

    def _busy(self) -> bool:
        if self._work is not None and self._work.is_running:
            self.notify(f"Wait: {self._work_what} is running (esc cancels it).", severity="warning")
            return True
        return False

    def _run(self, work: Callable[[CopyJob], Awaitable[None]], job: CopyJob, what: str) -> None:
        async def run() -> None:  # made when the worker starts, so a cancel never strands it
            try:
                await work(job)
            except DifpipeError as err:
                self._error("form", err.render())
                self.query_one("#plan", Static).border_subtitle = ""
                self.console.show_error(err, what)

        self._work_what = what
        self._work = self.run_worker(run, name=what, description=what, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR and worker.error is not None:
            self.console.show_error(worker.error, worker.description)

    def action_close(self) -> None:
        if self._work is not None and self._work.is_running:
            self._work.cancel()
            plan = self.query_one("#plan", Static)
            plan.update(f"Cancelled: {self._work_what}.")
            plan.border_subtitle = ""
            return
        self.dismiss(None)
