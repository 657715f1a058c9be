"""The headless ``difpipe`` command: parse, call the engine, print (table / JSON / YAML / CSV).

Every failure ends with a one-line message on stderr and the exit code of its class
(see :mod:`difpipe_tui.core.errors`); with ``--output json`` the error is also printed
as a JSON object on stdout so that scripts and agents can read it, usage errors included.
``hosts check`` prints its results whatever happens: a host that is down carries its error,
``exit_code`` and ``retryable`` in its row and gets one line on stderr. A host name that the
config does not have is a usage error (exit 2): the command line is wrong, not the file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import gc
import json
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import __version__, cli_demo, cli_transfer
from .core import config as cfg
from .core import paths
from .core.errors import EXIT_CODE_DOC, DifpipeError, ExitCode, LocalIOError, UsageError
from .render import FORMATS, Column, emit, emit_doc, human_bytes, join, ms


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code USAGE
        raise UsageError(f"{self.prog}: {message}", hint=f"see {self.prog} --help")


def _output_arg(p: argparse.ArgumentParser, default: str = "table") -> None:
    p.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default=default,
        help="output format (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    codes = "\n".join(f"  {int(c):>3}  {doc}" for c, doc in EXIT_CODE_DOC.items())
    parser = _Parser(
        prog="difpipe",
        description="Move data between SSH hosts and keep edge apps serving.",
        epilog=f"exit codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"difpipe {__version__}")
    parser.add_argument("--config", metavar="FILE", help=f"config file (default: {_cfg_hint()})")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument(
        "--readonly", action="store_true", help="console: hide every action that changes anything"
    )
    parser.add_argument("--theme", help="console: dark, light or high-contrast (not saved)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    hosts = sub.add_parser("hosts", help="list, check and import hosts")
    hsub = hosts.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    p = hsub.add_parser("list", help="the hosts in the config")
    _output_arg(p)
    p = hsub.add_parser("check", help="connect to hosts in parallel and report what they have")
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="hosts to check (default: all); a name not in the config is a usage error",
    )
    p.add_argument("--timeout", type=float, help="connect timeout in seconds for this check")
    _output_arg(p)
    p = hsub.add_parser("import-ssh-config", help="import Host blocks from an OpenSSH config")
    p.add_argument("file", nargs="?", default="~/.ssh/config", help="default: %(default)s")
    p.add_argument("--dry-run", action="store_true", help="show what would be imported")
    p.add_argument("--overwrite", action="store_true", help="replace hosts that already exist")
    _output_arg(p)

    conf = sub.add_parser("config", help="validate the config, print its schema or path")
    csub = conf.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    p = csub.add_parser("validate", help="check the config file and report the first problem")
    _output_arg(p)
    csub.add_parser("schema", help="the JSON Schema of the config file")
    csub.add_parser("path", help="where the config file is")
    cli_transfer.add_parsers(sub)
    cli_demo.add_parser(sub)
    return parser


def _cfg_hint() -> str:
    return "$DIFPIPE_CONFIG, $DIFPIPE_HOME/difpipe.toml or $XDG_CONFIG_HOME/difpipe/difpipe.toml"


# -- commands ---------------------------------------------------------------------------------


def cmd_hosts_list(args: argparse.Namespace) -> int:
    config = cfg.load_config(args.config)
    seen = _last_seen()
    rows = []
    for name, host in config.hosts.items():
        rh = config.resolve(name)
        status = seen.get(name)
        rows.append(
            {
                "name": name,
                "address": host.address,
                "port": rh.port,
                "user": rh.user,
                "role": host.role,
                "tags": list(host.tags),
                "jump": list(host.jump),
                "auth": host.auth.methods(),
                "host_key_policy": rh.host_key_policy,
                "reachable": None if status is None else status.reachable,
                "last_seen": None if status is None else status.last_seen,
            }
        )
    columns = [
        Column("name", "HOST"),
        Column("role", "ROLE"),
        Column("address", "ADDRESS"),
        Column("port", "PORT", justify="right"),
        Column("user", "USER"),
        Column("jump", "VIA", lambda v: " → ".join(v) if v else "-"),
        Column("auth", "AUTH", join),
        Column("tags", "TAGS", join),
        Column("reachable", "LAST CHECK", _reach),
    ]
    emit(rows, columns, args.output, title=None)
    return ExitCode.OK


def _reach(value: Any) -> str:
    return "-" if value is None else ("up" if value else "DOWN")


def _last_seen() -> dict[str, Any]:
    """The last recorded check per host; empty when the store cannot be read."""
    try:
        from .core.store import Store

        with Store.open() as store:
            return {s.host: s for s in store.list_host_status()}
    except (DifpipeError, OSError):
        return {}


def cmd_hosts_check(args: argparse.Namespace) -> int:
    from .core.hostcheck import check_hosts, overall_exit_code

    config = cfg.load_config(args.config)
    names = list(dict.fromkeys(args.names)) or list(config.hosts)
    if not names:
        raise UsageError(
            f"no hosts in {config.path}", hint="add one, or run difpipe hosts import-ssh-config"
        )
    unknown = [name for name in names if name not in config.hosts]
    if unknown:  # before connecting anywhere
        raise UsageError(
            f"no such host in {config.path}"
            if len(unknown) == 1
            else f"no such hosts in {config.path}: {', '.join(unknown)}",
            host=unknown[0] if len(unknown) == 1 else None,
            hint=f"known: {', '.join(config.hosts)}" if config.hosts else "no hosts configured",
        )
    if args.timeout is not None:
        config = _with_connect_timeout(config, args.timeout)
    results = asyncio.run(_check(config, names, check_hosts))
    _record(results)
    rows = [r.to_dict() for r in results]
    columns = [
        Column("name", "HOST"),
        Column("role", "ROLE"),
        Column("reachable", "STATUS", lambda v: "up" if v else "DOWN"),
        Column("latency_ms", "LATENCY", ms, justify="right"),
        Column("auth_method", "AUTH", lambda v: v or "-"),
        Column("os", "OS/ARCH", lambda v: v or "-"),
        Column("tools", "TOOLS", _optional_tools),
        Column("free_bytes", "FREE", human_bytes, justify="right"),
    ]
    if any(not r.reachable for r in results):
        columns.append(Column("error", "ERROR", lambda v: v or ""))
    if args.output == "table":
        for row in rows:
            if row["os"] and row["arch"]:
                row["os"] = f"{row['os']}/{row['arch']}"
            if not row["reachable"]:
                row["tools"] = None  # not known, rather than every tool missing
    emit(rows, columns, args.output)
    for r in results:
        if not r.reachable:
            print(f"difpipe: error: {r.error}", file=sys.stderr)
    return overall_exit_code(results)


def _with_connect_timeout(config: cfg.Config, timeout: float) -> cfg.Config:
    if timeout <= 0:
        raise UsageError(f"--timeout: expected a positive number of seconds, got {timeout:g}")
    hosts = {n: replace(h, connect_timeout=timeout) for n, h in config.hosts.items()}
    return replace(config, hosts=hosts, defaults=replace(config.defaults, connect_timeout=timeout))


def _optional_tools(tools: list[str] | None) -> str:
    """The tools that vary between hosts; a basic one missing is shown as ``-name``."""
    from .core.remote import BASIC_TOOLS

    if tools is None:
        return "-"
    missing = [f"-{t}" for t in BASIC_TOOLS if t not in tools]
    return " ".join([*(t for t in tools if t not in BASIC_TOOLS), *missing])


async def _check(config: cfg.Config, names: list[str], check_hosts: Any) -> Any:
    from .core.ssh import NO_RETRY, SSHPool

    async with SSHPool(config, retry=NO_RETRY) as pool:
        return await check_hosts(pool, names)


def _record(results: list[Any]) -> None:
    try:
        from .core.hostcheck import record
        from .core.store import Store

        with Store.open() as store:
            record(store, results)
    except (DifpipeError, OSError) as exc:
        logging.getLogger("difpipe").warning("could not record the check: %s", exc)


def cmd_hosts_import(args: argparse.Namespace) -> int:
    source = Path(args.file).expanduser()
    try:
        text = source.read_text()
    except OSError as exc:
        raise LocalIOError(f"cannot read {source}: {exc.strerror}") from exc
    imported, messages = cfg.import_ssh_config(text, source=str(source))
    for message in messages:
        print(f"difpipe: {message}", file=sys.stderr)
    config = cfg.load_config(args.config)
    added, replaced, skipped = [], [], []
    for host in imported:
        if host.name in config.hosts:
            if not args.overwrite:
                skipped.append(host.name)
                continue
            replaced.append(host.name)
        else:
            added.append(host.name)
    keep = [h for h in imported if h.name not in skipped]
    if keep and not args.dry_run:
        cfg.upsert_hosts(keep, config.path)
    for name in skipped:
        print(
            f"difpipe: skipped Host {name}: already in {config.path} (use --overwrite)",
            file=sys.stderr,
        )
    rows = [
        {
            "name": h.name,
            "action": ("skip" if h.name in skipped else "replace" if h.name in replaced else "add"),
            "address": h.address,
            "port": h.port,
            "user": h.user,
            "jump": list(h.jump),
            "key_files": list(h.auth.key_files),
        }
        for h in imported
    ]
    columns = [
        Column("name", "HOST"),
        Column("action", "ACTION" if not args.dry_run else "WOULD"),
        Column("address", "ADDRESS"),
        Column("port", "PORT", justify="right"),
        Column("user", "USER", lambda v: v or "-"),
        Column("jump", "VIA", lambda v: " → ".join(v) if v else "-"),
        Column("key_files", "KEYS", join),
    ]
    emit(rows, columns, args.output)
    if not args.dry_run and args.output == "table":
        print(
            f"{len(added)} added, {len(replaced)} replaced, {len(skipped)} skipped → {config.path}"
        )
    return ExitCode.OK


def cmd_config_validate(args: argparse.Namespace) -> int:
    config = cfg.load_config(args.config, missing_ok=False)
    result = {"valid": True, "path": str(config.path), "hosts": len(config.hosts)}
    if args.output in ("json", "yaml"):
        emit_doc(result, args.output)
    else:
        print(f"{config.path}: valid ({len(config.hosts)} hosts)")
    return ExitCode.OK


def cmd_config_schema(args: argparse.Namespace) -> int:
    json.dump(cfg.config_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return ExitCode.OK


def cmd_config_path(args: argparse.Namespace) -> int:
    print(paths.config_path(args.config))
    return ExitCode.OK


COMMANDS = {
    ("hosts", "list"): cmd_hosts_list,
    ("hosts", "check"): cmd_hosts_check,
    ("hosts", "import-ssh-config"): cmd_hosts_import,
    ("config", "validate"): cmd_config_validate,
    ("config", "schema"): cmd_config_schema,
    ("config", "path"): cmd_config_path,
    **cli_transfer.COMMANDS,
    ("demo", None): cli_demo.cmd_demo,
}


def _console(args: argparse.Namespace) -> int:
    """``difpipe`` with no command on a terminal: the console (Textual is imported only here)."""
    from .app import build_app

    startup_done()
    build_app(config_path=args.config, readonly=args.readonly, theme=args.theme).run()
    return ExitCode.OK


def _requested_output(argv: list[str]) -> str:
    """The ``--output`` a command line asks for, read before parsing it, so that a usage
    error is printed in the format the caller can read."""
    output = "table"
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg in ("-o", "--output"):
            value = argv[i + 1] if i + 1 < len(argv) else ""
        elif arg.startswith("--output="):
            value = arg.partition("=")[2]
        elif arg.startswith("-o"):
            value = arg[2:].removeprefix("=")
        else:
            continue
        if value in FORMATS:
            output = value
    return output


# Commands after which the process has nothing left to tear down: their engine is closed, the
# store committed and closed, and every byte written. Python's own teardown of the ~600 modules
# they load then takes 0.1-0.15 s of CPU, as long as the survey of both hosts.
_EXIT_AT_ONCE = frozenset({"copy", "analyze"})
_finished: list[str] = []


def run() -> None:
    """The ``difpipe`` program: :func:`main`, then, after a copy, exit at once."""
    code = main()
    if _finished and _finished[-1] in _EXIT_AT_ONCE:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def startup_done() -> None:
    """A command's modules are loaded: keep their objects out of the collector's walks, and
    turn it back on where the entry point (:mod:`.entry`) turned it off."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID`: every thread's stack on stderr, for a hang
        with contextlib.suppress(OSError, ValueError):  # a stderr with no file descriptor
            faulthandler.register(signal.SIGUSR1, all_threads=True)
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    output = _requested_output(argv)
    try:
        args = parser.parse_args(argv)
        output = getattr(args, "output", "table")
        logging.basicConfig(
            level=logging.WARNING - 10 * min(args.verbose, 2),
            format="difpipe: %(levelname)s: %(message)s",
        )
        if args.command is None:
            if sys.stdin.isatty() and sys.stdout.isatty():
                return _console(args)
            parser.print_help()
            return ExitCode.USAGE
        command = COMMANDS.get((args.command, getattr(args, "action", None)))
        if command is None:
            raise UsageError(f"difpipe {args.command}: an action is required", hint="see --help")
        command = getattr(command, "load", lambda: command)()
        startup_done()
        code = int(command(args))
        _finished.append(args.command)
        return code
    except DifpipeError as err:
        if output in ("json", "yaml"):
            emit_doc(err.to_dict(), output)
        print(f"difpipe: error: {err}", file=sys.stderr)
        return int(err.exit_code)
    except KeyboardInterrupt:
        print("difpipe: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:  # a bug: one line by default, the traceback with -v
        if logging.getLogger().isEnabledFor(logging.INFO):
            raise
        print(
            f"difpipe: internal error: {type(exc).__name__}: {exc} (please report it; -v shows"
            " the traceback)",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL
