"""``difpipe keygen`` and ``difpipe decrypt``: keys for ``--encrypt`` and getting the bytes back."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO

from .core.errors import ExitCode, LocalIOError
from .render import human_bytes


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
