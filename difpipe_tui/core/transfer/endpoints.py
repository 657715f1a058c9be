"""The ends of a transfer: ``host:path``, a local path, or ``-`` (stdin / stdout).

A ``NAME:path`` whose NAME is a configured host is remote. A local path that contains a colon
is written with a slash before it (``./a:b``), as with scp.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import Config
from ..errors import UsageError


@dataclass(frozen=True)
class Endpoint:
    kind: str  # "remote" | "local" | "stdio"
    path: str = ""
    host: str | None = None

    @property
    def is_remote(self) -> bool:
        return self.kind == "remote"

    @property
    def is_stdio(self) -> bool:
        return self.kind == "stdio"

    def __str__(self) -> str:
        if self.kind == "remote":
            return f"{self.host}:{self.path}"
        if self.kind == "stdio":
            return "-"
        return self.path

    def with_path(self, path: str) -> Endpoint:
        return Endpoint(self.kind, path, self.host)


def parse_endpoint(text: str, config: Config) -> Endpoint:
    if text == "-":
        return Endpoint("stdio")
    if not text:
        raise UsageError("an empty path is not a transfer end")
    head, sep, tail = text.partition(":")
    if sep and "/" not in head and head:
        if head not in config.hosts:
            known = ", ".join(config.hosts) or "none configured"
            raise UsageError(
                f'{text}: no host named "{head}" (known: {known})',
                hint=f"for a local file write ./{text}",
            )
        if not tail:
            raise UsageError(f"{text}: a remote end needs a path after the colon")
        return Endpoint("remote", tail, head)
    return Endpoint("local", os.path.expanduser(text))
