"""The "Advanced" part of the new-transfer form: the options of ``difpipe copy`` that most
transfers leave alone — strategy, transport, compression level, ``--parallel``, the checkpoint
interval, retries, the buffer per destination, the stall timeout, ``--fail-fast``,
``--no-overwrite`` and an ``--encrypt`` key file on this machine.

Collapsed it is one line, so the form still fits 80x24. :meth:`AdvancedOptions.read` turns the
fields into job fields with the parsing a job file gets (:func:`job_from_mapping`) and the key
check of ``difpipe copy --encrypt``; a bad value comes back as an error naming its field.
:func:`options_text` lists the chosen options under the analyze preview.
"""

from __future__ import annotations

import os
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Checkbox, Collapsible, Input, Label, Select

from ..core.errors import DifpipeError, UsageError
from ..core.transfer.encrypt import load_key
from ..core.transfer.job import STRATEGIES, TRANSPORTS, CopyJob, job_from_mapping
from ..render import human_bytes

#: The transport picker's value for "the config's defaults.transport" (job field ``None``).
CONFIG_TRANSPORT = "config"

#: The fields that can be wrong, by input id: how an error names them.
LABELS = {
    "level": "Level",
    "parallel": "Parallel",
    "checkpoint": "Checkpoint every",
    "retries": "Retries",
    "buffer": "Buffer",
    "stall": "Stall after",
    "encrypt": "Encrypt key",
}


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f'expected a whole number, got "{text}"') from None


def _seconds(text: str) -> float:
    try:
        return float(text.removesuffix("s").strip())
    except ValueError:
        raise UsageError(f'expected a number of seconds, got "{text}"') from None


def _size(text: str) -> str:
    return text  # the job parser reads sizes like "64M"


#: The typed fields: input id, job field, how its text becomes the job's value, and the
#: prefixes the job parser's messages carry, which the field's own label replaces.
TEXT_FIELDS = (
    ("level", "level", _integer, ("level: ", "--level: ")),
    ("parallel", "parallel", _integer, ("--parallel: ",)),
    (
        "checkpoint",
        "checkpoint_interval",
        _size,
        ("checkpoint_interval: ", "--checkpoint-interval: "),
    ),
    ("retries", "retries", _integer, ("--retries: ",)),
    ("buffer", "buffer", _size, ("buffer: ", "--buffer: ")),
    ("stall", "stall_timeout", _seconds, ("stall_timeout: ", "--stall-timeout: ")),
)


def checked(field: str, value: Any, **context: Any) -> Any:
    """``value`` of job field ``field`` parsed and checked as in a job file; ``context`` holds
    the other fields the check depends on (``compress`` for ``level``). The ends are
    placeholders: the form checks its own ends, and this shows an error on the one field."""
    data = {"source": "a", "destinations": ["b"], field: value, **context}
    job = job_from_mapping(data, what=field)
    return getattr(job, field)


def _message(err: DifpipeError, *prefixes: str) -> str:
    text = str(err)
    for prefix in prefixes:
        text = text.removeprefix(prefix)
    return text


class AdvancedOptions(Collapsible):
    DEFAULT_CSS = """
    AdvancedOptions { margin-top: 1; padding: 0; border-top: none; background: $surface; }
    AdvancedOptions > Contents { padding: 0; height: auto; }
    AdvancedOptions > CollapsibleTitle { padding: 0; color: $text-muted; }
    AdvancedOptions #strategy, AdvancedOptions #transport { width: 12; margin-right: 2; }
    AdvancedOptions #level, AdvancedOptions #parallel { width: 6; margin-right: 2; }
    AdvancedOptions #checkpoint, AdvancedOptions #buffer { width: 8; margin-right: 2; }
    AdvancedOptions #retries, AdvancedOptions #stall { width: 6; margin-right: 2; }
    AdvancedOptions Checkbox { margin-right: 2; }
    AdvancedOptions #encrypt { width: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__(title="Advanced", collapsed=True, id="advanced")

    def compose(self) -> ComposeResult:
        yield self._title
        with self.Contents():
            yield from self._fields()

    def _fields(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("Strategy", classes="form-label")
            yield Select(
                [(s, s) for s in STRATEGIES],
                value="auto",
                allow_blank=False,
                compact=True,
                id="strategy",
            )
            yield Label("Transport ")
            yield Select(
                [(t, t) for t in (CONFIG_TRANSPORT, *TRANSPORTS)],
                value=CONFIG_TRANSPORT,
                allow_blank=False,
                compact=True,
                id="transport",
                tooltip="config: the config's defaults.transport",
            )
        with Horizontal(classes="form-row"):
            yield Label("Level", classes="form-label")
            yield Input(placeholder="auto", compact=True, id="level")
            yield Label("Parallel ")
            yield Input(placeholder="1", compact=True, id="parallel")
            yield Label("Checkpoint every ")
            yield Input(placeholder="64M", compact=True, id="checkpoint")
        yield Label("", id="level-error", classes="field-error")
        yield Label("", id="parallel-error", classes="field-error")
        yield Label("", id="checkpoint-error", classes="field-error")
        with Horizontal(classes="form-row"):
            yield Label("Retries", classes="form-label")
            yield Input(placeholder=str(CopyJob.retries), compact=True, id="retries")
            yield Label("Buffer ")
            yield Input(placeholder=f"{CopyJob.buffer >> 20}M", compact=True, id="buffer")
            yield Checkbox(
                "Overwrite",
                CopyJob.overwrite,
                compact=True,
                id="overwrite",
                tooltip="replace a file already at the destination",
            )
            yield Checkbox(
                "Fail fast",
                CopyJob.fail_fast,
                compact=True,
                id="fail-fast",
                tooltip="stop every destination when one fails",
            )
        yield Label("", id="retries-error", classes="field-error")
        yield Label("", id="buffer-error", classes="field-error")
        with Horizontal(classes="form-row"):
            yield Label("Stall after", classes="form-label")
            yield Input(placeholder=f"{CopyJob.stall_timeout:g}", compact=True, id="stall")
            yield Label("seconds idle: that destination fails (0: never)")
        yield Label("", id="stall-error", classes="field-error")
        with Horizontal(classes="form-row"):
            yield Label("Encrypt key", classes="form-label")
            yield Input(
                placeholder="none, or a key file here (difpipe keygen)", compact=True, id="encrypt"
            )
        yield Label("", id="encrypt-error", classes="field-error")

    def _text(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value.strip()

    def read(self, compress: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The job fields these options set, and an error message per field at fault."""
        data: dict[str, Any] = {}
        errors: dict[str, str] = {}
        strategy = str(self.query_one("#strategy", Select).value)
        if strategy != "auto":
            data["strategy"] = strategy
        transport = str(self.query_one("#transport", Select).value)
        if transport != CONFIG_TRANSPORT:
            data["transport"] = transport
        for box, field, parse, prefixes in TEXT_FIELDS:
            if text := self._text(box):
                context = {"compress": compress} if field == "level" else {}
                try:
                    data[field] = checked(field, parse(text), **context)
                except UsageError as err:
                    errors[box] = _message(err, *prefixes)
        if self.query_one("#overwrite", Checkbox).value != CopyJob.overwrite:
            data["overwrite"] = not CopyJob.overwrite
        if self.query_one("#fail-fast", Checkbox).value != CopyJob.fail_fast:
            data["fail_fast"] = not CopyJob.fail_fast
        if text := self._text("encrypt"):
            path = os.path.abspath(os.path.expanduser(text))
            try:
                load_key(checked("encrypt", path))
                data["encrypt"] = path
            except DifpipeError as err:
                errors["encrypt"] = _message(err, "encrypt: ")
        if errors:
            self.collapsed = False
        return data, {field: f"{LABELS[field]}: {text}" for field, text in errors.items()}


def options_text(job: CopyJob) -> str:
    """The options of ``job`` that the plan itself does not show, as ``key  value`` lines."""
    lines: list[tuple[str, str]] = []
    if job.parallel > 1:
        lines.append(("parallel", f"{job.parallel} byte ranges, each on its own connections"))
    if job.encrypt:
        lines.append(("encrypt", f"AES-256-GCM, key {job.encrypt} (this machine)"))
    if job.checkpoint_interval != CopyJob.checkpoint_interval:
        lines.append(("checkpoint", f"every {human_bytes(job.checkpoint_interval)}"))
    if job.retries != CopyJob.retries:
        lines.append(("retries", str(job.retries)))
    if job.buffer != CopyJob.buffer:
        lines.append(("buffer", f"{human_bytes(job.buffer)} per destination"))
    if job.stall_timeout != CopyJob.stall_timeout:
        stall = f"after {job.stall_timeout:g} s without progress" if job.stall_timeout else "never"
        lines.append(("stall", f"a source or destination fails {stall}"))
    if not job.overwrite:
        lines.append(("overwrite", "no: a destination that exists fails"))
    if job.fail_fast:
        lines.append(("fail fast", "one destination failing stops the others"))
    if not lines:
        return ""
    width = max(14, *(len(k) + 2 for k, _ in lines))  # the plan's own column
    return "".join(f"{k:<{width}}{v}\n" for k, v in lines)
