"""Building a copy job for the CLI: from a job file (``--job``), a stored transfer (``--resume``)
and the command line, in that order of precedence from low to high.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, TextIO

from .core.errors import LocalIOError, UsageError
from .core.transfer.job import CopyJob, job_from_mapping
from .core.transfer.ratelimit import parse_rate, parse_size

#: Job fields that a resumed transfer must keep: they decide what the destinations hold.
RESUME_FIXED = ("source", "destinations", "recursive", "encrypt", "verify")

_FLAG_NAMES = {
    "source": "SRC",
    "destinations": "DST",
    "recursive": "--recursive",
    "encrypt": "--encrypt",
    "verify": "--verify",
}


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The job fields given as flags on the command line."""
    out: dict[str, Any] = {}
    for name in (
        "recursive",
        "strategy",
        "transport",
        "compress",
        "level",
        "verify",
        "retries",
        "fail_fast",
        "stall_timeout",
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
    import yaml  # here, not at the top: the console imports this module at launch

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


def check_key(job: CopyJob) -> None:
    """Fail before connecting anywhere when the --encrypt key file is unusable."""
    if job.encrypt is not None:
        from .core.transfer.encrypt import load_key

        load_key(os.path.expanduser(job.encrypt))
