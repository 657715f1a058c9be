"""``difpipe demo``: the console on an embedded lab of three SSH hosts, in one command.

The lab (:class:`difpipe_tui.demo.DemoLab`) runs in this process; ``DIFPIPE_HOME`` and
``DIFPIPE_CONFIG`` point at its private home for the whole run, so the user's own config,
state and known_hosts are never read or written. ``--no-ui`` prints the hosts and commands to
try from another terminal and serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from .core.errors import ExitCode, UsageError
from .core.transfer.ratelimit import parse_size
from .render import human_bytes

MAX_SIZE = 64 * 1024**3


def add_parser(sub: Any) -> None:
    """Add ``demo`` to the ``difpipe`` subcommand parsers."""
    p = sub.add_parser(
        "demo",
        help="the console on an embedded lab of three SSH hosts (no root, no sshd)",
        description=(
            "Start three SSH hosts on 127.0.0.1 inside this process (edge-pi, cloud-vm and"
            " backup, each rooted in its own temporary directory with sample data), write a"
            " config for them in a temporary DIFPIPE_HOME and open the console on it. Your own"
            " config and state are not touched."
        ),
    )
    p.add_argument(
        "--no-ui",
        action="store_true",
        help="print the hosts and example commands, then serve until Ctrl-C",
    )
    p.add_argument(
        "--size",
        default="64M",
        metavar="SIZE",
        help="size of edge-pi:data/big.bin (default: %(default)s)",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the lab directory (data, config) on exit"
    )
    p.add_argument(
        "--dir", metavar="DIR", help="make the lab directory under DIR (default: the temp dir)"
    )
    p.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default="table",
        help="with --no-ui: json prints one JSON object describing the lab (default: table)",
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoLab

    if args.config:
        raise UsageError(
            "difpipe demo: --config cannot be used; the demo writes its own config",
            hint="drop --config",
        )
    size = parse_size(args.size, "--size")
    if not 0 < size <= MAX_SIZE:
        raise UsageError(f'--size: expected 1 byte to 64G, got "{args.size}"')
    if args.dir is not None and not os.path.isdir(args.dir):
        raise UsageError(f"--dir: {args.dir}: no such directory")
    if args.output == "json" and not args.no_ui:
        raise UsageError("difpipe demo: -o json needs --no-ui")
    if not args.no_ui and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("difpipe demo: the console needs a terminal", hint="use --no-ui")

    print(f"difpipe: starting the demo lab ({human_bytes(size)} sample file)…", file=sys.stderr)
    started = time.monotonic()
    with _signals(_interrupt, signal.SIGTERM, signal.SIGHUP):  # a stop at any time cleans up
        lab = DemoLab.start(args.dir, big_size=size, keep=args.keep)
        try:
            with _lab_environment(lab):
                if args.no_ui:
                    return _serve(lab, args.output, time.monotonic() - started)
                return _console(lab, args)
        finally:
            lab.close()
            where = f"kept {lab.base}" if args.keep else "removed its files"
            print(f"difpipe: demo lab stopped; {where}", file=sys.stderr)


@contextlib.contextmanager
def _lab_environment(lab: Any) -> Iterator[None]:
    """Point DIFPIPE_HOME and DIFPIPE_CONFIG at the lab for the run; restore them after."""
    saved = {key: os.environ.get(key) for key in ("DIFPIPE_HOME", "DIFPIPE_CONFIG")}
    os.environ["DIFPIPE_HOME"] = str(lab.home)
    os.environ["DIFPIPE_CONFIG"] = str(lab.config_path)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _console(lab: Any, args: argparse.Namespace) -> int:
    from .app import build_app

    app = build_app(
        config_path=lab.config_path,
        home=lab.home,
        readonly=getattr(args, "readonly", False),
        theme=getattr(args, "theme", None),
    )

    def on_signal(signum: int, frame: Any) -> None:  # the app's loop runs on this thread
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the app has not started or has stopped: stop as Ctrl-C does
            raise KeyboardInterrupt from None
        loop.call_soon_threadsafe(app.exit)

    with _signals(on_signal, signal.SIGTERM, signal.SIGHUP):
        app.run()
    return ExitCode.OK


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals(handler: Any, *signums: int) -> Iterator[None]:
    """``handler`` for ``signums`` for the time of the block, so that the lab is closed."""
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def describe(lab: Any, seconds: float | None = None) -> dict[str, Any]:
    """The lab as a document: where its config is, its hosts, and commands to try."""
    return {
        "home": str(lab.home),
        "config": str(lab.config_path),
        "hosts": [
            {
                "name": h.name,
                "role": h.role,
                "address": h.address,
                "port": h.port,
                "root": str(h.root),
                "files": _top_entries(h.root),
            }
            for h in lab.hosts.values()
        ],
        "env": {"DIFPIPE_HOME": str(lab.home)},
        "examples": lab.examples(),
        "start_seconds": None if seconds is None else round(seconds, 2),
    }


def _top_entries(root: Any) -> list[str]:
    """What a newcomer can copy: files one level down, directories with their file counts."""
    entries = []
    for top in sorted(root.iterdir()):
        for entry in sorted(top.iterdir()) if top.is_dir() else [top]:
            rel = entry.relative_to(root).as_posix()
            if entry.is_dir():
                count = sum(len(files) for _, _, files in os.walk(entry))
                entries.append(f"{rel}/ ({count} file{'' if count == 1 else 's'})")
            else:
                entries.append(f"{rel} ({human_bytes(entry.stat().st_size)})")
        if top.is_dir() and not any(top.iterdir()):
            entries.append(f"{top.relative_to(root).as_posix()}/ (empty)")
    return entries


def _serve(lab: Any, output: str, seconds: float) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    with _signals(on_signal, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        doc = describe(lab, seconds)  # ready only once a stop is handled
        if output == "json":
            print(json.dumps(doc), flush=True)
        else:
            print(_text(doc), flush=True)
        while not stop.wait(1.0):
            if not lab.running:
                print("difpipe: error: the demo lab stopped unexpectedly", file=sys.stderr)
                return ExitCode.INTERNAL
    return ExitCode.OK


def _text(doc: dict[str, Any]) -> str:
    width = max(len(h["name"]) for h in doc["hosts"])
    lines = ["DifPipe demo lab: three SSH hosts on 127.0.0.1, served by this process", ""]
    for h in doc["hosts"]:
        where = f"{h['address']}:{h['port']}"
        lines.append(f"  {h['name']:<{width}}  {h['role']:<8} {where:<16} {h['root']}")
        lines.extend(f"  {'':<{width}}    {entry}" for entry in h["files"])
    lines += [
        "",
        f"config: {doc['config']}",
        "",
        "Try these in another terminal (paths are relative to each host's directory):",
        "",
        f"  export DIFPIPE_HOME={doc['home']}",
        *(f"  {cmd}" for cmd in doc["examples"]),
        "",
        f"ready in {doc['start_seconds']:.1f}s; Ctrl-C stops the lab",
    ]
    return "\n".join(lines)
