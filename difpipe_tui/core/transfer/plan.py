"""Planning a copy without moving a byte: what the ends are, what they have, and how to move it."""

from __future__ import annotations

import asyncio
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..errors import DifpipeError, LocalIOError, RemoteCommandError, UsageError
from ..ssh import SSHPool
from .codecs import CodecChoice, choose_codec, estimate_ratio
from .endpoints import Endpoint, parse_endpoint
from .ends import (
    PathInfo,
    inspect_local,
    inspect_remote,
    resolve_target,
    sample_local,
    sample_remote,
)
from .job import CopyJob

EXEC_TOOLS = {"sh", "cat", "tail", "head"}


@dataclass
class SourcePlan:
    endpoint: Endpoint
    kind: str  # file | dir | stream
    size: int | None
    files: int | None
    tools: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": str(self.endpoint),
            "kind": self.kind,
            "size": self.size,
            "files": self.files,
            "is_dir": self.kind == "dir",
            "tools": sorted(self.tools),
        }


@dataclass
class DestinationPlan:
    endpoint: Endpoint  # as given
    target: str  # the path the file lands at
    exists: bool
    free_bytes: int | None
    tools: set[str] = field(default_factory=set)
    problem: DifpipeError | None = None

    @property
    def label(self) -> str:
        return str(self.endpoint)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": str(self.endpoint),
            "target": self.target,
            "exists": self.exists,
            "free_bytes": self.free_bytes,
            "tools": sorted(self.tools),
            "problem": str(self.problem) if self.problem else None,
        }


@dataclass
class Plan:
    job: CopyJob
    source: SourcePlan
    destinations: list[DestinationPlan]
    strategy: str
    strategy_reason: str
    codec: CodecChoice
    sample_ratio: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.to_dict(),
            "destinations": [d.to_dict() for d in self.destinations],
            "strategy": self.strategy,
            "strategy_reason": self.strategy_reason,
            "codec": self.codec.to_dict(),
            "verify": self.job.verify,
            "sample_ratio": None if self.sample_ratio is None else round(self.sample_ratio, 3),
        }


async def _tools(pool: SSHPool, ep: Endpoint) -> set[str]:
    if not ep.is_remote:
        return set()
    assert ep.host is not None
    return set((await pool.info(ep.host)).tools)


async def _inspect(pool: SSHPool, ep: Endpoint, path: str | None = None) -> PathInfo:
    path = ep.path if path is None else path
    if ep.is_remote:
        assert ep.host is not None
        return await inspect_remote(pool, ep.host, path)
    return await asyncio.to_thread(inspect_local, path)


async def make_plan(job: CopyJob, config: Config, pool: SSHPool) -> Plan:
    src = parse_endpoint(job.source, config)
    dsts = [parse_endpoint(d, config) for d in job.destinations]
    if sum(d.is_stdio for d in dsts) > 1:
        raise UsageError("stdout (-) can be a destination only once")

    if src.is_stdio:
        source = SourcePlan(src, "stream", None, None)
    else:
        info, tools = await asyncio.gather(_inspect(pool, src), _tools(pool, src))
        where = f"{src.host}:" if src.is_remote else ""
        if info.kind == "missing":
            err = RemoteCommandError if src.is_remote else LocalIOError
            raise err(f"{where}{src.path}: no such file or directory", host=src.host)
        if info.kind == "dir":
            if not job.recursive:
                raise UsageError(f"{where}{src.path} is a directory", hint="use -r to copy it")
            raise UsageError(
                f"{where}{src.path}: copying directories (tar-stream) is not available in"
                " this version",
                hint="copy a tar archive of it as a file",
            )
        if info.kind != "file":
            raise UsageError(f"{where}{src.path}: not a regular file")
        source = SourcePlan(src, "file", info.size, 1, tools)
        if src.is_remote and not tools >= EXEC_TOOLS:
            missing = ", ".join(sorted(EXEC_TOOLS - tools))
            raise RemoteCommandError(
                f"the host lacks {missing}; the SFTP strategy that needs no shell is not"
                " available in this version",
                host=src.host,
            )

    if job.strategy in ("sftp", "tar"):
        raise UsageError(f"--strategy {job.strategy} is not available in this version")

    base = "" if src.is_stdio else posixpath.basename(src.path.rstrip("/"))
    destinations = await asyncio.gather(*(_plan_destination(pool, d, base, job) for d in dsts))

    sample = None
    ratio = None
    if job.compress == "auto" and not src.is_stdio and (source.size or 0) > 0:
        if src.is_remote:
            assert src.host is not None
            sample = await sample_remote(pool, src.host, src.path)
        else:
            sample = await asyncio.to_thread(sample_local, src.path)
        ratio = estimate_ratio(sample) if sample else None
    remote_dsts = [d for d in destinations if d.endpoint.is_remote]
    if remote_dsts and len(remote_dsts) == len(destinations):
        dst_tools = set.intersection(*(d.tools for d in remote_dsts))
    else:
        dst_tools = set()
    codec = choose_codec(job.compress, sample, source.tools, dst_tools, job.level)
    if job.encrypt and codec.destination_decompresses:
        codec = CodecChoice(
            codec.codec,
            codec.level,
            "local-decompress" if codec.source_compresses else "none",
            codec.reason + "; the destination stores ciphertext, so it cannot decompress",
        )
    reason = "remote ends run cat/tail and tee over one SSH channel each"
    if not source.endpoint.is_remote and not remote_dsts:
        reason = "no remote end: a local copy through this machine"
    return Plan(job, source, list(destinations), "exec", reason, codec, ratio)


async def _plan_destination(
    pool: SSHPool, ep: Endpoint, base: str, job: CopyJob
) -> DestinationPlan:
    if ep.is_stdio:
        return DestinationPlan(ep, "-", False, None)
    tools = await _tools(pool, ep)
    info = await _inspect(pool, ep)
    where = f"{ep.host}:" if ep.is_remote else ""
    try:
        target = resolve_target(ep.path, info, base, remote=ep.is_remote)
    except UsageError as err:
        return DestinationPlan(ep, ep.path, False, info.free_bytes, tools, err)
    if target != ep.path:
        info = await _inspect(pool, ep, target)
    shown = f"{where}{target}"
    problem: DifpipeError | None = None
    err_cls = RemoteCommandError if ep.is_remote else LocalIOError
    if info.kind == "dir":
        problem = err_cls(f"{shown} is a directory", host=ep.host)
    elif info.parent == "missing":
        parent = posixpath.dirname(target) if ep.is_remote else os.path.dirname(target)
        problem = err_cls(f"{where}{parent or '.'}: no such directory", host=ep.host)
    elif info.parent == "readonly":
        problem = err_cls(f"{shown}: permission denied", host=ep.host)
    elif info.kind == "file" and not job.overwrite:
        problem = err_cls(f"{shown} exists", host=ep.host, hint="--no-overwrite was given")
    if ep.is_remote and problem is None and not {"cat", "dd", "mv", "tee"} <= tools:
        problem = RemoteCommandError("the host lacks cat, dd, mv or tee", host=ep.host)
    return DestinationPlan(ep, target, info.kind == "file", info.free_bytes, tools, problem)
