"""The argument parsers of the transfer commands: ``copy``, ``analyze``, ``checkpoints``,
``keygen`` and ``decrypt``; the commands themselves live in :mod:`.cli_copy`,
:mod:`.cli_checkpoints` and :mod:`.cli_crypto`, and jobs are built in :mod:`.cli_jobs`.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

from .core.transfer.codecs import COMPRESS_CHOICES
from .core.transfer.job import STRATEGIES, TRANSPORTS
from .core.transfer.verify import DIGESTS
from .progress import PROGRESS_MODES
from .render import FORMATS


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
    g.add_argument(
        "--transport",
        choices=TRANSPORTS,
        help="how a remote file streams: openssh (one ssh process per remote end), asyncssh"
        " (inside difpipe), auto (openssh when ssh can reach the host); default: the config's"
        " defaults.transport",
    )
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
        help="stop the whole copy when one destination fails; nothing lands",
    )
    g.add_argument(
        "--stall-timeout",
        type=float,
        metavar="SECONDS",
        help="a destination that takes no data for this long fails (retryable) and the others"
        " go on; a remote source that sends none fails the attempt (retryable); 0: no limit"
        " (default: 60)",
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


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """``module.name``, imported when the command runs: parsing and ``--help`` need none."""

    def load() -> Callable[[argparse.Namespace], int]:
        return getattr(importlib.import_module(module, __package__), name)

    def command(args: argparse.Namespace) -> int:
        return load()(args)

    command.__name__ = command.__qualname__ = name
    command.load = load  # type: ignore[attr-defined]  # cli.main loads it before it runs
    return command


COMMANDS: dict[tuple[str, str | None], Callable[[argparse.Namespace], int]] = {
    ("copy", None): _lazy(".cli_copy", "cmd_copy"),
    ("analyze", None): _lazy(".cli_copy", "cmd_analyze"),
    ("checkpoints", "list"): _lazy(".cli_checkpoints", "cmd_checkpoints_list"),
    ("checkpoints", "show"): _lazy(".cli_checkpoints", "cmd_checkpoints_show"),
    ("checkpoints", "resume"): _lazy(".cli_copy", "cmd_checkpoints_resume"),
    ("checkpoints", "rm"): _lazy(".cli_checkpoints", "cmd_checkpoints_rm"),
    ("keygen", None): _lazy(".cli_crypto", "cmd_keygen"),
    ("decrypt", None): _lazy(".cli_crypto", "cmd_decrypt"),
}
