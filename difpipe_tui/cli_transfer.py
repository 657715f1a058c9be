"""The transfer commands of the headless CLI: ``copy``, ``analyze``, ``checkpoints``, ``keygen``
and ``decrypt``.

``copy`` builds a :class:`~difpipe_tui.core.transfer.job.CopyJob` from a job file (``--job``),
a stored transfer (``--resume``) and the command line, in that order of precedence from low to
high, runs it on the transfer engine and prints a summary. Where its output goes:

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
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import IO, Any, TextIO

import yaml

from .core import config as cfg
from .core.errors import DifpipeError, ExitCode, LocalIOError, UsageError
from .core.events import EventBus, TransferFinished
from .core.transfer.codecs import COMPRESS_CHOICES
from .core.transfer.job import STRATEGIES, CopyJob, CopyResult, job_from_mapping, job_schema
from .core.transfer.ratelimit import parse_rate, parse_size
from .core.transfer.verify import DIGESTS
from .progress import PROGRESS_MODES, BarProgress, NdjsonProgress, make_progress
from .render import FORMATS, Column, emit, emit_doc, human_bytes

#: Job fields that a resumed transfer must keep: they decide what the destinations hold.
RESUME_FIXED = ("source", "destinations", "recursive", "encrypt", "verify")

_FLAG_NAMES = {
    "source": "SRC",
    "destinations": "DST",
    "recursive": "--recursive",
    "encrypt": "--encrypt",
    "verify": "--verify",
}


def make_engine(config: cfg.Config, *, pool: Any, store: Any, bus: EventBus) -> Any:
    """The transfer engine the commands run on."""
    from .core.transfer.engine import TransferEngine

    return TransferEngine(config, pool=pool, store=store, bus=bus)


def _hard_exit(code: int) -> None:
    os._exit(code)


# -- parsers ----------------------------------------------------------------------------------


def add_parsers(sub: Any) -> None:
    """Add the transfer commands to the ``difpipe`` subcommand parsers."""
    p = sub.add_parser(
        "copy",
        help="copy a file or directory to one or more destinations",
        usage=(
            "difpipe copy [options] SRC DST [DST ...]\n"
            "       difpipe copy [options] --job FILE|-\n"
            "       difpipe copy [options] --resume ID\n"
            "       difpipe copy --schema"
        ),
        description=(
            "Copy SRC to every DST at once (read once, fanned out). An end is host:path, a local"
            " path, or - for stdin / stdout."
        ),
    )
    p.add_argument("paths", nargs="*", metavar="SRC DST", help="source, then destinations")
    _job_args(p)
    p.add_argument(
        "--job", metavar="FILE", help="read the job from a TOML, YAML or JSON file (- for stdin)"
    )
    p.add_argument(
        "--resume", metavar="ID", help="resume an interrupted transfer from its checkpoints"
    )
    p.add_argument("--schema", action="store_true", help="print the JSON Schema of a job file")
    _run_args(p)

    p = sub.add_parser(
        "analyze",
        help="show how a copy would run, without copying",
        usage=(
            "difpipe analyze [options] SRC DST [DST ...]\n"
            "       difpipe analyze [options] --job FILE|-"
        ),
    )
    p.add_argument("paths", nargs="*", metavar="SRC DST", help="source, then destinations")
    _job_args(p)
    p.add_argument(
        "--job", metavar="FILE", help="read the job from a TOML, YAML or JSON file (- for stdin)"
    )
    p.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "yaml"),
        default="table",
        help="output format (default: %(default)s)",
    )

    cp = sub.add_parser("checkpoints", help="list, show, resume and remove unfinished transfers")
    csub = cp.add_subparsers(dest="action", metavar="ACTION", parser_class=type(cp))
    p = csub.add_parser(
        "list", help="transfers that are not done, and how far each destination got"
    )
    _output_arg(p)
    p = csub.add_parser("show", help="a transfer and its checkpoints")
    p.add_argument("id", metavar="ID")
    _output_arg(p)
    p = csub.add_parser("resume", help="resume a transfer (same as difpipe copy --resume ID)")
    p.add_argument("id", metavar="ID", help="the transfer to resume (see checkpoints list)")
    _job_args(p, resume=True)
    _run_args(p)
    p = csub.add_parser("rm", help="delete transfers and their checkpoints")
    p.add_argument("ids", nargs="+", metavar="ID")
    _output_arg(p)

    p = sub.add_parser("keygen", help="write a new key file for --encrypt (mode 0600)")
    p.add_argument("file", metavar="FILE", help="where to write the key; never overwritten")

    p = sub.add_parser(
        "decrypt",
        help="restore a file that was copied with --encrypt",
        description=(
            "Decrypt (and decompress) IN to OUT. OUT is written as OUT.difpipe-part and renamed"
            " only once every chunk was authenticated. With OUT - the plaintext is written to"
            " stdout chunk by chunk, each once authenticated: a cut or altered input ends with"
            " exit code 8 after the good part was written."
        ),
    )
    p.add_argument("--key", required=True, metavar="KEYFILE", help="the key file used to encrypt")
    p.add_argument("input", metavar="IN", help="the encrypted file, or - for stdin")
    p.add_argument(
        "output_file", metavar="OUT", help="where to write the plaintext, or - for stdout"
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def _output_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="table",
        help="output format (default: %(default)s)",
    )


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        help="bars on stderr, NDJSON events on stdout, or nothing (default: bar when stderr is a"
        " terminal, else none)",
    )
    p.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        help="format of the summary (default: table; with --progress json the summary is the"
        " stream's last line)",
    )


def _job_args(p: argparse.ArgumentParser, *, resume: bool = False) -> None:
    g = p.add_argument_group(
        "job options",
        "given on the command line, they override the job file or the stored transfer",
    )
    if not resume:
        g.add_argument(
            "-r", "--recursive", action="store_const", const=True, help="copy a directory"
        )
    g.add_argument("--strategy", choices=STRATEGIES, help="how the bytes move (default: auto)")
    g.add_argument("--compress", choices=COMPRESS_CHOICES, help="compression (default: auto)")
    g.add_argument("--level", type=int, metavar="N", help="compression level")
    if not resume:
        g.add_argument("--verify", choices=DIGESTS, help="end-to-end digest (default: sha256)")
    g.add_argument(
        "--checkpoint-interval",
        metavar="SIZE",
        help="save a resume point every SIZE bytes, e.g. 64M (binary units; default: 64M)",
    )
    g.add_argument("--retries", type=int, metavar="N", help="retries after a failure (default: 3)")
    g.add_argument(
        "--fail-fast",
        action="store_const",
        const=True,
        help="stop the whole copy when one destination fails",
    )
    g.add_argument(
        "--rate-limit",
        metavar="RATE",
        help="bytes per second for the whole transfer, e.g. 20M (SI units; 20Mi binary)",
    )
    g.add_argument("--parallel", type=int, metavar="N", help="parallel streams, 1..16 (default: 1)")
    g.add_argument(
        "--buffer", metavar="SIZE", help="memory per destination, e.g. 16M (default: 16M)"
    )
    if not resume:
        g.add_argument(
            "--encrypt",
            metavar="KEYFILE",
            help="destinations receive AES-256-GCM ciphertext (see difpipe keygen, decrypt)",
        )
        g.add_argument(
            "--no-overwrite",
            dest="overwrite",
            action="store_const",
            const=False,
            help="refuse to replace an existing destination file",
        )


# -- building a job ---------------------------------------------------------------------------


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The job fields given as flags on the command line."""
    out: dict[str, Any] = {}
    for name in (
        "recursive",
        "strategy",
        "compress",
        "level",
        "verify",
        "retries",
        "fail_fast",
        "parallel",
        "overwrite",
    ):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    if getattr(args, "encrypt", None) is not None:
        out["encrypt"] = os.path.abspath(os.path.expanduser(args.encrypt))
    if getattr(args, "checkpoint_interval", None) is not None:
        out["checkpoint_interval"] = parse_size(args.checkpoint_interval, "--checkpoint-interval")
    if getattr(args, "buffer", None) is not None:
        out["buffer"] = parse_size(args.buffer, "--buffer")
    if getattr(args, "rate_limit", None) is not None:
        out["rate_limit"] = parse_rate(args.rate_limit)
    return out


def _ends(paths: list[str], command: str) -> dict[str, Any]:
    if not paths:
        return {}
    if len(paths) == 1:
        raise UsageError(
            f"difpipe {command}: {paths[0]}: a destination is missing",
            hint=f"difpipe {command} SRC DST [DST ...]",
        )
    return {"source": paths[0], "destinations": list(paths[1:])}


def parse_job_text(text: str, what: str, fmt: str | None = None) -> dict[str, Any]:
    """A job document as a mapping; ``fmt`` is toml, yaml or json, or None to sniff it."""
    if fmt is None:
        stripped = text.lstrip()
        if stripped.startswith("{"):
            fmt = "json"
        else:
            try:
                data: Any = tomllib.loads(text)
                fmt = "toml"
            except tomllib.TOMLDecodeError:
                fmt = "yaml"
    try:
        if fmt == "json":
            data = json.loads(text)
        elif fmt == "toml":
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{what}: not valid {fmt.upper()}: {first}") from None
    if not isinstance(data, dict):
        raise UsageError(
            f"{what}: expected a mapping of job fields (TOML, YAML or JSON)",
            hint="see difpipe copy --schema",
        )
    return data


_SUFFIXES = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def load_job_file(name: str, stdin: TextIO | None = None) -> tuple[dict[str, Any], str]:
    """The mapping in job file ``name`` (``-``: stdin) and how to name it in messages."""
    if name == "-":
        text = (stdin if stdin is not None else sys.stdin).read()
        return parse_job_text(text, "job (stdin)"), "job (stdin)"
    path = Path(name).expanduser()
    try:
        text = path.read_text()
    except OSError as exc:
        raise LocalIOError(f"{path}: cannot read the job file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: a job file is text (TOML, YAML or JSON)") from None
    return parse_job_text(text, str(path), _SUFFIXES.get(path.suffix.lower())), str(path)


def build_job(args: argparse.Namespace, command: str) -> CopyJob:
    """The job of ``copy`` / ``analyze`` without ``--resume``: job file, then ends and flags."""
    ends = _ends(args.paths, command)
    overrides = flag_overrides(args)
    if args.job is not None:
        data, what = load_job_file(args.job)
        job = job_from_mapping({**data, **ends, **overrides}, what=what)
        if args.job == "-" and job.source == "-":
            raise UsageError("--job -: stdin holds the job, so it cannot also be the source")
        return job
    if not ends:
        raise UsageError(
            f"difpipe {command}: give SRC and at least one DST, or --job FILE"
            + (", or --resume ID" if command == "copy" else ""),
            hint=f"see difpipe {command} --help",
        )
    return job_from_mapping({**ends, **overrides}, what="command line")


def _comparable(key: str, value: Any) -> Any:
    if key == "destinations":
        return list(value)
    if key == "encrypt" and value is not None:
        return os.path.abspath(os.path.expanduser(value))
    return value


def resume_job(stored: CopyJob, transfer_id: str, args: argparse.Namespace) -> CopyJob:
    """The stored job with the flags of this command line; what it copies where is kept."""
    data = stored.to_dict()
    overrides = {**_ends(getattr(args, "paths", []), "copy"), **flag_overrides(args)}
    changed = [
        key
        for key in RESUME_FIXED
        if key in overrides and _comparable(key, overrides[key]) != _comparable(key, data[key])
    ]
    if changed:
        flags = ", ".join(_FLAG_NAMES[key] for key in changed)
        raise UsageError(
            f"--resume {transfer_id}: {flags} differ from the stored transfer"
            f" ({stored.source} → {' '.join(stored.destinations)})",
            hint="leave them out to resume, or start a new copy",
        )
    return job_from_mapping({**data, **overrides}, what=f"transfer {transfer_id}")


def _check_key(job: CopyJob) -> None:
    """Fail before connecting anywhere when the --encrypt key file is unusable."""
    if job.encrypt is not None:
        from .core.transfer.encrypt import load_key

        load_key(os.path.expanduser(job.encrypt))


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
            _check_key(job)
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
                _check_key(job)
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
        emit_doc(_plain(data), args.output)
    else:
        sys.stdout.write(plan_text(data))
    return ExitCode.OK


async def _analyze(config: cfg.Config, job: CopyJob) -> Any:
    async with _engine(config, EventBus()) as engine:
        return await engine.analyze(job)


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
    lines.append(("verify", str(plan.get("verify", "?"))))
    ratio = plan.get("sample_ratio")
    if ratio is not None:
        lines.append(("sample ratio", f"{ratio:.2f} (compressed size / original, of a sample)"))
    width = max(len(k) for k, _ in lines) + 2
    return "".join(f"{k:<{width}}{v}\n" for k, v in lines)


def _plain(data: Any) -> Any:
    """JSON-ready data (enums as strings, tuples as lists), also for YAML's safe dumper."""
    return json.loads(json.dumps(data, default=str))


# -- checkpoints ------------------------------------------------------------------------------


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _done_text(row: Mapping[str, Any]) -> str:
    offset, total = row["offset"], row["total"]
    if total:
        return f"{human_bytes(offset)} ({100 * offset / total:.0f}%)"
    return human_bytes(offset)


def _prefix_text(row: Mapping[str, Any]) -> str:
    return row["prefix_digest"][:12] if row.get("prefix_digest") else "-"


def cmd_checkpoints_list(args: argparse.Namespace) -> int:
    from .core.store import Store, TransferStatus

    now = time.time()
    rows = []
    with Store.open() as store:
        statuses = [s for s in TransferStatus if s is not TransferStatus.DONE]
        for rec in store.list_transfers(status=statuses, limit=1000):
            cps = {cp.destination: cp for cp in store.get_checkpoints(rec.id)}
            dests = list(rec.destinations) + [d for d in cps if d not in rec.destinations]
            for dest in dests:
                cp = cps.get(dest)
                updated = cp.updated_at if cp is not None else rec.updated_at
                rows.append(
                    {
                        "transfer_id": rec.id,
                        "status": str(rec.status),
                        "source": rec.source,
                        "destination": dest,
                        "offset": cp.offset if cp is not None else 0,
                        "total": (
                            cp.total if cp is not None and cp.total is not None else rec.total_bytes
                        ),
                        "updated_at": updated,
                        "age_seconds": round(now - updated, 1),
                        "prefix_digest": cp.prefix_digest if cp is not None else None,
                        "digest_algo": cp.digest_algo if cp is not None else None,
                    }
                )
    if args.output == "table":
        if not rows:
            print("no unfinished transfers")
            return ExitCode.OK
        for row in rows:
            row["done"] = _done_text(row)
            row["age"] = _age(row["age_seconds"])
            row["prefix"] = _prefix_text(row)
    columns = [
        Column("transfer_id", "ID"),
        Column("status", "STATUS"),
        Column("source", "SOURCE"),
        Column("destination", "DESTINATION"),
        Column("done", "CHECKPOINT", justify="right"),
        Column("total", "SIZE", human_bytes, justify="right"),
        Column("age", "AGE", justify="right"),
        Column("prefix", "PREFIX DIGEST"),
    ]
    emit(rows, columns, args.output)
    return ExitCode.OK


def _transfer_or_fail(store: Any, transfer_id: str) -> Any:
    rec = store.get_transfer(transfer_id)
    if rec is None:
        raise UsageError(f"no transfer with id {transfer_id}", hint="see difpipe checkpoints list")
    return rec


def cmd_checkpoints_show(args: argparse.Namespace) -> int:
    from .core.store import Store

    with Store.open() as store:
        rec = _transfer_or_fail(store, args.id)
        cps = store.get_checkpoints(rec.id)
    transfer = _plain(rec.to_dict())
    checkpoints = [_plain(cp.to_dict()) for cp in cps]
    if args.output in ("json", "yaml"):
        emit_doc({"transfer": transfer, "checkpoints": checkpoints}, args.output)
        return ExitCode.OK
    rows = [
        {**cp, "total": cp["total"] if cp["total"] is not None else rec.total_bytes}
        for cp in checkpoints
    ]
    if args.output == "csv":
        emit(rows, [], "csv")
        return ExitCode.OK
    now = time.time()
    fields = [
        ("id", rec.id),
        ("status", str(rec.status)),
        ("source", rec.source),
        ("destinations", " ".join(rec.destinations)),
        ("size", human_bytes(rec.total_bytes)),
        ("done", human_bytes(rec.bytes_done)),
        ("created", f"{_age(now - rec.created_at)} ago"),
        ("updated", f"{_age(now - rec.updated_at)} ago"),
    ]
    if rec.digest:
        fields.append(("digest", rec.digest))
    if rec.error:
        fields.append(("error", rec.error))
    width = max(len(k) for k, _ in fields) + 2
    sys.stdout.write("".join(f"{k:<{width}}{v}\n" for k, v in fields))
    if rows:
        for row in rows:
            row["done"] = _done_text(row)
            row["age"] = _age(now - row["updated_at"])
            row["prefix"] = _prefix_text(row)
        columns = [
            Column("destination", "DESTINATION"),
            Column("done", "CHECKPOINT", justify="right"),
            Column("total", "SIZE", human_bytes, justify="right"),
            Column("age", "AGE", justify="right"),
            Column("digest_algo", "ALGO"),
            Column("prefix", "PREFIX DIGEST"),
        ]
        emit(rows, columns, "table")
    else:
        print("no checkpoints")
    return ExitCode.OK


def cmd_checkpoints_rm(args: argparse.Namespace) -> int:
    from .core.store import Store

    ids = list(dict.fromkeys(args.ids))
    with Store.open() as store:
        unknown = [i for i in ids if store.get_transfer(i) is None]
        if unknown:
            raise UsageError(
                f"no transfer with id {', '.join(unknown)}; nothing was removed",
                hint="see difpipe checkpoints list",
            )
        for transfer_id in ids:
            store.delete_transfer(transfer_id)
    if args.output in ("json", "yaml"):
        emit_doc({"removed": ids}, args.output)
    elif args.output == "csv":
        emit([{"removed": i} for i in ids], [], "csv")
    else:
        for transfer_id in ids:
            print(f"removed {transfer_id}")
    return ExitCode.OK


# -- keys -------------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from .core.transfer.encrypt import generate_key

    path = os.path.expanduser(args.file)
    generate_key(path)
    print(f"{path}: new key (mode 0600); without it, data encrypted with it cannot be read")
    return ExitCode.OK


def cmd_decrypt(args: argparse.Namespace) -> int:
    from .core.transfer.encrypt import decrypt_file, decrypt_stream, decrypt_to_file, load_key

    key = load_key(os.path.expanduser(args.key))
    src, dst = args.input, args.output_file
    if src != "-" and dst != "-":
        written = decrypt_file(src, dst, key, overwrite=args.overwrite)
        print(f"{dst}: {human_bytes(written)} decrypted and authenticated")
        return ExitCode.OK
    if src == "-":
        reader: IO[bytes] = sys.stdin.buffer
        what = "stdin"
    else:
        try:
            reader = open(src, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise LocalIOError(f"{src}: cannot read: {exc.strerror}") from None
        what = src
    try:
        if dst == "-":
            out = sys.stdout.buffer

            def write(data: bytes) -> None:
                out.write(data)
                out.flush()

            decrypt_stream(reader, write, key, what=what)
        else:
            if not args.overwrite and os.path.lexists(dst):
                raise LocalIOError(f"{dst}: already exists; remove it or use --overwrite")
            written = decrypt_to_file(reader, dst, key, what=what, overwrite=args.overwrite)
            print(f"{dst}: {human_bytes(written)} decrypted and authenticated")
    finally:
        if src != "-":
            reader.close()
    return ExitCode.OK


COMMANDS: dict[tuple[str, str | None], Callable[[argparse.Namespace], int]] = {
    ("copy", None): cmd_copy,
    ("analyze", None): cmd_analyze,
    ("checkpoints", "list"): cmd_checkpoints_list,
    ("checkpoints", "show"): cmd_checkpoints_show,
    ("checkpoints", "resume"): cmd_checkpoints_resume,
    ("checkpoints", "rm"): cmd_checkpoints_rm,
    ("keygen", None): cmd_keygen,
    ("decrypt", None): cmd_decrypt,
}
