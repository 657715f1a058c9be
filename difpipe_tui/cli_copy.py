"""``difpipe copy`` and ``difpipe analyze``: run a job on the transfer engine and print the result.

Where the output goes:

* progress bars (``--progress bar``) and every ``difpipe:`` message go to stderr;
* the summary goes to stdout, in the ``--output`` format;
* ``--progress json`` makes stdout one NDJSON stream: the events, then one last line of kind
  ``summary`` (the result) or ``error``;
* when a destination is ``-`` the copied bytes own stdout, and the summary and any NDJSON go
  to stderr instead.

Ctrl-C or SIGTERM cancels the transfer, which saves a checkpoint; the command then prints how to
resume and exits 130. A second Ctrl-C exits at once, keeping the last checkpoint saved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any, TextIO

from .cli_jobs import build_job, check_key, resume_job
from .core import config as cfg
from .core.errors import DifpipeError, ExitCode, UsageError
from .core.events import EventBus, TransferFinished
from .core.transfer.job import CopyJob, CopyResult, job_schema
from .progress import BarProgress, NdjsonProgress, make_progress
from .render import Column, emit, emit_doc, human_bytes, plain


def make_engine(config: cfg.Config, *, pool: Any, store: Any, bus: EventBus) -> Any:
    """The transfer engine the commands run on."""
    from .core.transfer.engine import TransferEngine

    return TransferEngine(config, pool=pool, store=store, bus=bus)


def _hard_exit(code: int) -> None:
    os._exit(code)


# -- running ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _engine(config: cfg.Config, bus: EventBus) -> AsyncIterator[Any]:
    from .core.ssh import SSHPool
    from .core.store import Store

    with Store.open() as store:
        async with SSHPool(config, bus=bus) as pool:
            yield make_engine(config, pool=pool, store=store, bus=bus)


class _Report:
    """Where the summary, the NDJSON stream and errors of one ``copy`` go."""

    def __init__(self, args: argparse.Namespace):
        self.mode = args.progress or ("bar" if _isatty(sys.stderr) else "none")
        self.fmt = args.output or ("json" if self.mode == "json" else "table")
        if self.mode == "json" and self.fmt != "json":
            raise UsageError(
                f"--progress json writes NDJSON to stdout and ends it with the summary;"
                f" -o {self.fmt} cannot be combined with it",
                hint="leave out -o, or use --progress bar or none",
            )
        self.out: TextIO = sys.stdout
        self.printer: Any = None

    def use_stderr(self) -> None:
        """The copied bytes go to stdout: everything printed goes to stderr."""
        self.out = sys.stderr

    def open_printer(self) -> Any:
        self.printer = make_progress(self.mode, out=self.out)
        return self.printer

    def close_printer(self) -> None:
        if self.printer is not None:
            self.printer.close()

    def error(self, err: DifpipeError) -> int:
        self.close_printer()
        if self.mode == "json":
            stream = self.printer if isinstance(self.printer, NdjsonProgress) else None
            (stream or NdjsonProgress(self.out)).error(err.to_dict())
        elif self.fmt in ("json", "yaml"):
            emit_doc(err.to_dict(), self.fmt, self.out)
        print(f"difpipe: error: {err}", file=sys.stderr)
        return int(err.exit_code)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Signals:
    """Ctrl-C / SIGTERM: the first cancels the transfer (it saves a checkpoint), the second
    exits at once."""

    def __init__(self, task: asyncio.Task[Any] | None, report: _Report):
        self.task = task
        self.report = report
        self.handle: Any = None
        self.count = 0
        self._installed: list[int] = []

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.received)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            self._installed.append(sig)

    def remove(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in self._installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        self._installed.clear()

    def received(self) -> None:
        self.count += 1
        if self.count == 1:
            if self.handle is None:
                if self.task is not None:
                    self.task.cancel()
                return
            if isinstance(self.report.printer, BarProgress):
                self.report.printer.console.print(
                    "difpipe: stopping: saving a checkpoint (Ctrl-C again to quit at once)",
                    markup=False,
                    highlight=False,
                )
            self.handle.cancel("interrupted")
            return
        self.report.close_printer()
        if self.handle is not None:
            _print_resume_hint(self.handle.id)
        else:
            print("difpipe: interrupted", file=sys.stderr)
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        _hard_exit(ExitCode.INTERRUPTED)


def _print_resume_hint(transfer_id: str) -> None:
    print(
        f"difpipe: interrupted; resume with: difpipe copy --resume {transfer_id}", file=sys.stderr
    )


def cmd_copy(args: argparse.Namespace) -> int:
    if getattr(args, "schema", False):
        json.dump(job_schema(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return ExitCode.OK
    report = _Report(args)
    resume_id = getattr(args, "resume", None)
    job: CopyJob | None = None
    try:
        if resume_id is None:
            job = build_job(args, "copy")
            check_key(job)
            if "-" in job.destinations:
                report.use_stderr()
        elif args.job is not None:
            raise UsageError(
                "--job and --resume cannot be combined", hint="the stored transfer holds the job"
            )
        config = cfg.load_config(args.config)
        return asyncio.run(_copy(config, args, report, job, resume_id))
    except DifpipeError as err:
        return report.error(err)
    finally:
        report.close_printer()


def cmd_checkpoints_resume(args: argparse.Namespace) -> int:
    args.resume = args.id
    args.paths = []
    args.job = None
    return cmd_copy(args)


async def _copy(
    config: cfg.Config,
    args: argparse.Namespace,
    report: _Report,
    job: CopyJob | None,
    resume_id: str | None,
) -> int:
    loop = asyncio.get_running_loop()
    signals = _Signals(asyncio.current_task(), report)
    signals.install(loop)
    bus = EventBus()
    finished: dict[str, str | None] = {}

    def on_finished(event: Any) -> None:
        if isinstance(event, TransferFinished):
            finished[event.transfer_id] = event.error

    bus.subscribe(on_finished)
    try:
        async with _engine(config, bus) as engine:
            if resume_id is not None:
                job = resume_job(engine.job_for_resume(resume_id), resume_id, args)
                check_key(job)
                if "-" in job.destinations:
                    report.use_stderr()
            assert job is not None
            bus.subscribe(report.open_printer())
            handle = await engine.start(
                job,
                resume_id=resume_id,
                stdin=sys.stdin.buffer if job.source == "-" else None,
                stdout=sys.stdout.buffer if "-" in job.destinations else None,
            )
            signals.handle = handle
            result: CopyResult = await handle.wait()
    except asyncio.CancelledError:
        if signals.count:
            report.close_printer()
            print("difpipe: interrupted", file=sys.stderr)
            return ExitCode.INTERRUPTED
        raise
    finally:
        signals.remove(loop)
    report.close_printer()
    print_result(result, report, finished.get(result.transfer_id))
    return exit_code_for(result)


def exit_code_for(result: CopyResult) -> int:
    """done 0, partial 9, interrupted 130; failed: the first failed destination's code, else 1."""
    if result.status == "done":
        return ExitCode.OK
    if result.status == "partial":
        return ExitCode.PARTIAL
    if result.status == "interrupted":
        return ExitCode.INTERRUPTED
    for dest in result.destinations:
        if dest.status == "failed" and dest.exit_code:
            return int(dest.exit_code)
    return ExitCode.INTERNAL


def _short(digest: str | None, n: int = 16) -> str:
    if not digest:
        return "-"
    return digest if len(digest) <= n else digest[:n] + "…"


def summary_rows(result: CopyResult) -> list[dict[str, Any]]:
    return [
        {
            "transfer_id": result.transfer_id,
            "destination": d.destination,
            "status": d.status,
            "bytes": d.bytes,
            "digest": d.digest,
            "error": d.error,
            "exit_code": d.exit_code,
            "resumed_from": d.resumed_from,
        }
        for d in result.destinations
    ]


SUMMARY_COLUMNS = [
    Column("destination", "DESTINATION"),
    Column("status", "STATUS"),
    Column("bytes", "BYTES", human_bytes, justify="right"),
    Column("digest", "DIGEST", _short),
    Column("resumed_from", "RESUMED FROM", lambda v: human_bytes(v) if v else "-", justify="right"),
    Column("error", "ERROR", lambda v: v or ""),
]


def totals_line(result: CopyResult) -> str:
    parts = [
        f"{result.transfer_id}: {result.status}, {human_bytes(result.bytes)}"
        f" in {result.seconds:.1f} s ({human_bytes(int(result.rate))}/s)"
    ]
    if result.strategy:
        parts.append(f"strategy {result.strategy}")
    codec = f"compression {result.codec}"
    if result.codec_reason:
        codec += f" ({result.codec_reason})"
    parts.append(codec)
    parts.append(f"verify {result.verify}" + (f" {_short(result.digest)}" if result.digest else ""))
    if result.resumed_from:
        parts.append(f"resumed from {human_bytes(result.resumed_from)}")
    return ", ".join(parts)


def print_result(result: CopyResult, report: _Report, error: str | None = None) -> None:
    if isinstance(report.printer, NdjsonProgress):
        report.printer.summary(result.to_dict())
    elif report.fmt in ("json", "yaml"):
        emit_doc(result.to_dict(), report.fmt, report.out)
    else:
        rows = summary_rows(result)
        columns = SUMMARY_COLUMNS
        if report.fmt == "table" and not any(r["error"] for r in rows):
            columns = columns[:-1]
        emit(rows, columns, report.fmt, out=report.out)
        if report.fmt == "table":
            print(totals_line(result), file=report.out)
    failed = [d for d in result.destinations if d.status == "failed"]
    for dest in failed:
        message = dest.error or "failed"
        if not message.startswith(dest.destination):
            message = f"{dest.destination}: {message}"
        print(f"difpipe: error: {message}", file=sys.stderr)
    if result.status == "failed" and not failed:
        print(
            f"difpipe: error: transfer {result.transfer_id} failed: {error or 'no detail'}",
            file=sys.stderr,
        )
    if result.status == "interrupted":
        _print_resume_hint(result.transfer_id)


# -- analyze ----------------------------------------------------------------------------------


def cmd_analyze(args: argparse.Namespace) -> int:
    job = build_job(args, "analyze")
    config = cfg.load_config(args.config)
    plan = asyncio.run(_analyze(config, job))
    data = plan.to_dict()
    if args.output in ("json", "yaml"):
        emit_doc(plain(data), args.output)
    else:
        sys.stdout.write(plan_text(data))
    return ExitCode.OK


async def _analyze(config: cfg.Config, job: CopyJob) -> Any:
    async with _engine(config, EventBus()) as engine:
        return await engine.analyze(job)


def _transport_text(end: Mapping[str, Any]) -> str:
    reason = end.get("transport_reason")
    return f"{end['transport']}: {reason}" if reason else str(end["transport"])


def plan_text(plan: Mapping[str, Any]) -> str:
    """A plan as ``key  value`` lines, with the reasons behind each choice."""
    lines: list[tuple[str, str]] = []
    src = plan.get("source") or {}
    what = "directory" if src.get("is_dir") else (src.get("kind") or "file")
    detail = [what]
    if src.get("size") is not None:
        detail.append(human_bytes(src["size"]))
    if src.get("files") is not None and src.get("is_dir"):
        detail.append(f"{src['files']} files")
    lines.append(("source", f"{src.get('endpoint', '?')}  ({', '.join(detail)})"))
    if src.get("transport") not in (None, "local"):
        lines.append(("", f"transport {_transport_text(src)}"))
    for dest in plan.get("destinations") or []:
        endpoint = str(dest.get("endpoint", "?"))
        target = dest.get("target")
        free = dest.get("free_bytes")
        info = []
        if target and not endpoint.endswith(target):
            info.append(f"lands at {target}")
        if dest.get("exists"):
            info.append("replaces a file")
        info.append(f"free {human_bytes(free)}" if free is not None else "free unknown")
        if dest.get("tools"):
            info.append(f"tools {' '.join(dest['tools'])}")
        lines.append(("destination", f"{endpoint}  ({', '.join(info)})"))
        if dest.get("transport") not in (None, "local"):
            lines.append(("", f"transport {_transport_text(dest)}"))
        if dest.get("problem"):
            lines.append(("", f"problem: {dest['problem']}"))
    strategy = str(plan.get("strategy", "?"))
    if plan.get("strategy_reason"):
        strategy += f": {plan['strategy_reason']}"
    lines.append(("strategy", strategy))
    codec = plan.get("codec") or {}
    text = str(codec.get("codec", "none"))
    if codec.get("level") is not None:
        text += f" level {codec['level']}"
    if codec.get("where") and codec.get("where") != "none":
        text += f", runs {codec['where']}"
    if codec.get("reason"):
        text += f": {codec['reason']}"
    lines.append(("compression", text))
    verify = str(plan.get("verify", "?"))
    if plan.get("digest_reason") and verify != "none":
        verify += f": {plan['digest_reason']}"
    lines.append(("verify", verify))
    ratio = plan.get("sample_ratio")
    if ratio is not None:
        lines.append(("sample ratio", f"{ratio:.2f} (compressed size / original, of a sample)"))
    width = max(len(k) for k, _ in lines) + 2
    return "".join(f"{k:<{width}}{v}\n" for k, v in lines)
