"""Planning a copy without moving a byte: what the ends are, what they have, and how to move it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import ConfigError, DifpipeError, LocalIOError, RemoteCommandError, UsageError
from ..remote import PYTHON_LINE, TOOL_PROBE_START, RemoteInfo, command, parse_tool_probe
from ..ssh import SSHPool
from .codecs import CodecChoice, choose_codec, estimate_ratio
from .encresume import STAT_ARGV, parse_stamp
from .endpoints import Endpoint, parse_endpoint
from .ends import (
    INSPECT_FUNCTION,
    PathInfo,
    inspect_local,
    inspect_remote,
    parse_inspect,
    resolve_target,
    sample_local,
    sample_remote,
)
from .job import CopyJob
from .sftp import sample_sftp, sftp_inspect
from .tarstream import SIZE_FUNCTION, local_dir_size, parse_dir_size, remote_dir_size
from .verify import digest_argv

if TYPE_CHECKING:
    from .openssh import OpenSSHContext

EXEC_TOOLS = {"sh", "cat", "tail", "head"}


@dataclass
class SourcePlan:
    endpoint: Endpoint
    kind: str  # file | dir | stream
    size: int | None
    files: int | None
    tools: set[str] = field(default_factory=set)
    sftp: bool = False
    transport: str = "local"  # local | asyncssh | openssh
    transport_reason: str = ""
    stamp: str | None = None  # a remote file's stat stamp, surveyed for --parallel's checkpoints

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": str(self.endpoint),
            "kind": self.kind,
            "size": self.size,
            "files": self.files,
            "is_dir": self.kind == "dir",
            "tools": sorted(self.tools),
            "sftp": self.sftp,
            "transport": self.transport,
            "transport_reason": self.transport_reason,
        }


@dataclass
class DestinationPlan:
    endpoint: Endpoint  # as given
    target: str  # the path the file lands at
    exists: bool
    free_bytes: int | None
    tools: set[str] = field(default_factory=set)
    problem: DifpipeError | None = None
    sftp: bool = False
    transport: str = "local"  # local | asyncssh | openssh
    transport_reason: str = ""

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
            "sftp": self.sftp,
            "transport": self.transport,
            "transport_reason": self.transport_reason,
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
    transport: str = "auto"  # the setting the ends were chosen by
    digest_site: str = "none"  # where the stream's digest is computed: see digest_site()
    digest_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "source": self.source.to_dict(),
            "destinations": [d.to_dict() for d in self.destinations],
            "strategy": self.strategy,
            "strategy_reason": self.strategy_reason,
            "codec": self.codec.to_dict(),
            "verify": self.job.verify,
            "digest_site": self.digest_site,
            "digest_reason": self.digest_reason,
            "sample_ratio": None if self.sample_ratio is None else round(self.sample_ratio, 3),
        }


# The survey: ONE command per remote host at the start of a plan, instead of one per question.
# $@ = pairs OP PATH, answered in order, each after a line "@ OP INDEX":
#   inspect  the lines of ends.INSPECT_FUNCTION (kind and size, parent, free space)
#   size     "bytes N" and "files N" when PATH is a directory (tarstream.SIZE_FUNCTION)
#   stamp    the file's stat stamp (encresume.STAT_ARGV): --parallel keeps it in checkpoints
#   sample   the first 64 KiB, raw, of the file or of the directory's tar stream: always last
# When it opens with the tool probe, the probe's python3 start runs on in the background
# meanwhile, and its line comes after "@ tools 0", before any sample: on a 10,000-file tree
# the python3 start and the tree's size take ~20 ms each, at once rather than in turn.
# A constant script: the paths reach it only as quoted positional arguments.
SURVEY = (
    INSPECT_FUNCTION
    + SIZE_FUNCTION
    + "late() { if [ -n \"$py\" ]; then printf '@ tools 0\\n'; "
    + PYTHON_LINE
    + "py=; fi; }; "
    + (
        "i=0; while [ $# -ge 2 ]; do op=$1; p=$2; shift 2; i=$((i + 1)); "
        'if [ "$op" = sample ]; then late; fi; '
        'printf "@ %s %s\\n" "$op" "$i"; case $op in '
        'inspect) insp "$p" ;; '
        'size) if [ -d "$p" ]; then dsize "$p"; fi ;; '
        + "stamp) "
        + command(*STAT_ARGV)
        + ' -- "$p" 2>/dev/null ;; '
        'sample) if [ -d "$p" ]; then tar -C "$p" -cf - . 2>/dev/null | head -c 65536; '
        'elif [ -f "$p" ]; then head -c 65536 -- "$p" 2>/dev/null; fi ;; '
        "esac; done; late; exit 0"
    )
)
_SAMPLE_LINE = re.compile(rb"(?:^|\n)@ sample \d+\n")


@dataclass
class _HostSurvey:
    info: RemoteInfo | None = None
    answers: dict[tuple[str, str], str] = field(default_factory=dict)
    sample: bytes | None = None


class Survey:
    """What a plan asks each remote host, asked in one command per host, all hosts at once.

    The first command on a connection also carries the tool probe, whose result the pool then
    keeps for the connection. A host that cannot run the script (no shell: SFTP only) answers
    nothing here, and the planner asks it the usual way.
    """

    def __init__(self, pool: SSHPool):
        self.pool = pool
        self._ops: dict[str, list[tuple[str, str]]] = {}
        self._hosts: dict[str, _HostSurvey] = {}

    def want(self, ep: Endpoint, op: str, path: str) -> None:
        if not ep.is_remote or ep.host is None:
            return
        ops = self._ops.setdefault(ep.host, [])
        if (op, path) not in ops:
            ops.append((op, path))

    async def run(self) -> None:
        await asyncio.gather(*(self._ask(h, ops) for h, ops in self._ops.items()))

    async def _ask(self, host: str, ops: list[tuple[str, str]]) -> None:
        ops = sorted(ops, key=lambda o: o[0] == "sample")  # the raw sample must come last
        try:
            hc = await self.pool.connect(host)
            if hc.info is not None and not hc.info.shell:
                return  # SFTP only: the planner asks it over SFTP
            probe = hc.info is None
            script = (TOOL_PROBE_START if probe else "py=; ") + SURVEY
            args = [a for op in ops for a in op]
            res = await self.pool.run(host, command("sh", "-c", script, "sh", *args), check=False)
        except DifpipeError:
            return  # each end reports its own failure when the planner asks again
        out = res.stdout
        survey = _HostSurvey()
        found = _SAMPLE_LINE.search(out)
        if found is not None:
            survey.sample = out[found.end() :]
            out = out[: found.start()]
        probe_lines: list[str] = []
        blocks: dict[int, list[str]] = {}
        current: list[str] = probe_lines
        for line in out.decode(errors="replace").splitlines():
            words = line.split()
            if len(words) == 3 and words[0] == "@" and words[2].isdigit():
                current = blocks.setdefault(int(words[2]), [])
            else:
                current.append(line)
        if probe:
            info = parse_tool_probe("\n".join(probe_lines + blocks.get(0, [])))
            if "sh" not in info.tools:
                return  # no usable shell: leave the host to pool.info and SFTP
            hc.info = survey.info = info
        for i, op in enumerate(ops, start=1):
            if i in blocks and op[0] != "sample":
                survey.answers[op] = "\n".join(blocks[i])
        self._hosts[host] = survey

    def answer(self, ep: Endpoint, op: str, path: str) -> str | None:
        survey = self._hosts.get(ep.host or "")
        return None if survey is None else survey.answers.get((op, path))

    def sample(self, ep: Endpoint) -> bytes | None:
        survey = self._hosts.get(ep.host or "")
        return None if survey is None else survey.sample


async def _measure_rtt(pool: SSHPool, ep: Endpoint) -> None:
    if ep.is_remote and ep.host is not None:
        with contextlib.suppress(DifpipeError):
            await pool.rtt(ep.host)


async def _tools(pool: SSHPool, ep: Endpoint) -> set[str]:
    if not ep.is_remote:
        return set()
    assert ep.host is not None
    return set((await pool.info(ep.host)).tools)


async def _uses_sftp(pool: SSHPool, ep: Endpoint, job: CopyJob, needs: set[str]) -> bool:
    """Whether this remote end moves data over SFTP rather than a shell pipeline."""
    if not ep.is_remote:
        return False
    assert ep.host is not None
    info = await pool.info(ep.host)
    if job.strategy == "sftp":
        return True
    if set(info.tools) >= needs:
        return False
    missing = ", ".join(sorted(needs - set(info.tools)))
    if job.strategy == "exec":
        raise RemoteCommandError(f"the host lacks {missing} (--strategy exec)", host=ep.host)
    if info.sftp is False:
        raise RemoteCommandError(f"the host lacks {missing} and offers no SFTP", host=ep.host)
    return True


async def _inspect(
    pool: SSHPool,
    ep: Endpoint,
    path: str | None = None,
    *,
    sftp: bool = False,
    survey: Survey | None = None,
) -> PathInfo:
    path = ep.path if path is None else path
    known = survey.answer(ep, "inspect", path) if survey is not None and not sftp else None
    if known is not None:
        return parse_inspect(known)
    if sftp:
        assert ep.host is not None
        return await sftp_inspect(pool, ep.host, path)
    if ep.is_remote:
        assert ep.host is not None
        return await inspect_remote(pool, ep.host, path)
    return await asyncio.to_thread(inspect_local, path)


def transport_setting(job: CopyJob, config: Config) -> str:
    """The transport setting of a job: its own, else the config's ``defaults.transport``."""
    return job.transport or config.defaults.transport


#: Below this many bytes ``auto`` streams a file over asyncssh: an OpenSSH leg's ssh processes
#: and its master's login cost ~0.15 s, which its speed (~10% on a relay) saves only on more.
OPENSSH_MIN_BYTES = 256 * 1024 * 1024


def small_local_file(ep: Endpoint) -> bool:
    """Whether ``ep`` is a local file that ``auto`` streams over asyncssh by its size."""
    if ep.kind != "local":
        return False
    try:
        st = os.stat(ep.path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size < OPENSSH_MIN_BYTES


def _choose_transport(
    setting: str,
    host: str,
    openssh: OpenSSHContext | None,
    *,
    job: CopyJob,
    sftp: bool,
    is_dir: bool,
    size: int | None,
) -> tuple[str, str]:
    """(transport, why) of one remote end. Raises ConfigError when "openssh" cannot be had.

    ``size`` is the file's (None when not known beforehand, as with stdin)."""
    if sftp:
        return "asyncssh", "SFTP runs inside difpipe (asyncssh)"
    if is_dir:
        return "asyncssh", "a directory streams as tar inside difpipe (asyncssh)"
    if job.parallel > 1:
        return "asyncssh", f"--parallel {job.parallel}: byte ranges over asyncssh connections"
    if setting == "asyncssh":
        return "asyncssh", 'transport = "asyncssh"'
    if setting == "auto" and size is not None and size < OPENSSH_MIN_BYTES:
        return "asyncssh", (
            f"a file under {OPENSSH_MIN_BYTES >> 20} MiB streams inside difpipe: an OpenSSH leg"
            " would wait for its own login"
        )
    why = "the OpenSSH client (ssh) is not installed" if openssh is None else openssh.why_not(host)
    if why is None:
        assert openssh is not None and openssh.version is not None
        version = ".".join(map(str, openssh.version))
        return "openssh", (
            f'transport = "{setting}": its own ssh process (OpenSSH {version}), on its own core'
        )
    if setting == "openssh":
        raise ConfigError(f'cannot use transport = "openssh": {why}', host=host)
    return "asyncssh", f"OpenSSH cannot be used: {why}"


async def make_plan(
    job: CopyJob, config: Config, pool: SSHPool, openssh: OpenSSHContext | None = None
) -> Plan:
    """The plan of ``job``. ``openssh`` (a context over ``pool``) offers OpenSSH legs."""
    setting = transport_setting(job, config)
    src = parse_endpoint(job.source, config)
    dsts = [parse_endpoint(d, config) for d in job.destinations]
    if sum(d.is_stdio for d in dsts) > 1:
        raise UsageError("stdout (-) can be a destination only once")
    # one command per host, all at once: tools, the ends, the directory's size, the sample;
    # each end reports its own failure below
    base = "" if src.is_stdio else posixpath.basename(src.path.rstrip("/"))
    survey = Survey(pool)
    if not src.is_stdio:
        survey.want(src, "inspect", src.path)
        if job.recursive:
            survey.want(src, "size", src.path)
        if job.compress == "auto" and job.parallel <= 1:
            survey.want(src, "sample", src.path)
        if job.parallel > 1:
            survey.want(src, "stamp", src.path)
    for d in dsts:
        survey.want(d, "inspect", d.path)
        if base:
            survey.want(d, "inspect", posixpath.join(d.path, base))
    # and the source's round trip, which sizes the window its stream comes in on
    await asyncio.gather(survey.run(), _measure_rtt(pool, src))

    if src.is_stdio:
        source = SourcePlan(src, "stream", None, None)
    else:
        via_sftp = await _uses_sftp(pool, src, job, EXEC_TOOLS)
        info = await _inspect(pool, src, sftp=via_sftp, survey=survey)
        tools = set() if via_sftp else await _tools(pool, src)
        where = f"{src.host}:" if src.is_remote else ""
        if info.kind == "missing":
            err = RemoteCommandError if src.is_remote else LocalIOError
            raise err(f"{where}{src.path}: no such file or directory", host=src.host)
        if info.kind == "dir":
            if not job.recursive:
                raise UsageError(f"{where}{src.path} is a directory", hint="use -r to copy it")
            if via_sftp:
                raise UsageError(f"{where}{src.path}: a directory needs tar and a shell, not SFTP")
            if src.is_remote:
                assert src.host is not None
                if "tar" not in tools:
                    raise RemoteCommandError(
                        "the host has no tar to stream a directory", host=src.host
                    )
                known = survey.answer(src, "size", src.path)
                if known is not None:
                    size, files = parse_dir_size(known)
                else:
                    size, files = await remote_dir_size(pool, src.host, src.path)
            else:
                size, files = await asyncio.to_thread(local_dir_size, src.path)
            source = SourcePlan(src, "dir", size, files, tools)
        elif info.kind != "file":
            raise UsageError(f"{where}{src.path}: not a regular file")
        else:
            source = SourcePlan(src, "file", info.size, 1, tools, sftp=via_sftp)
            source.stamp = parse_stamp(survey.answer(src, "stamp", src.path) or "")
        if src.is_remote:
            assert src.host is not None
            source.transport, source.transport_reason = _choose_transport(
                setting,
                src.host,
                openssh,
                job=job,
                sftp=via_sftp,
                is_dir=source.kind == "dir",
                size=source.size,
            )

    if job.strategy == "tar" and source.kind != "dir":
        raise UsageError("--strategy tar streams a directory; the source is not one")
    if source.kind == "dir" and any(d.is_stdio for d in dsts):
        raise UsageError("a directory cannot be written to stdout")

    destinations = await asyncio.gather(
        *(_plan_destination(pool, d, base, job, source.kind == "dir", survey) for d in dsts)
    )
    for dp in destinations:
        if not dp.endpoint.is_remote:
            continue
        assert dp.endpoint.host is not None
        try:
            dp.transport, dp.transport_reason = _choose_transport(
                setting,
                dp.endpoint.host,
                openssh,
                job=job,
                sftp=dp.sftp,
                is_dir=source.kind == "dir",
                size=source.size,
            )
        except ConfigError as err:
            dp.transport, dp.transport_reason = "asyncssh", str(err)
            dp.problem = dp.problem or err

    sample = None
    ratio = None
    if job.parallel > 1:
        pass  # byte ranges move uncompressed (below): nothing to sample
    elif job.compress == "auto" and source.kind == "dir" and (source.size or 0) > 0:
        sample = survey.sample(src)
        if sample is None:
            sample = await _sample_tar(pool, src)
        ratio = estimate_ratio(sample) if sample else None
    elif job.compress == "auto" and not src.is_stdio and (source.size or 0) > 0:
        if source.sftp:
            assert src.host is not None
            sample = await sample_sftp(pool, src.host, src.path)
        elif src.is_remote:
            assert src.host is not None
            sample = survey.sample(src)
            if sample is None:
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
        if codec.source_compresses:
            codec = CodecChoice(
                codec.codec, codec.level, "local-decompress",
                codec.reason + "; the ciphertext keeps the compressed stream"
                " (difpipe decrypt decompresses it)",
            )  # fmt: skip
        else:
            codec = CodecChoice(
                "none", None, "none",
                "the source has no compressor and destinations store ciphertext; not compressing",
            )  # fmt: skip
    if job.parallel > 1:
        if source.kind != "file":
            raise UsageError(
                "--parallel splits one file into byte ranges; the source is not a file"
            )
        if job.encrypt:
            raise UsageError("--parallel cannot be combined with --encrypt")
        if any(d.endpoint.is_stdio for d in destinations):
            raise UsageError("--parallel writes ranges in place; stdout cannot be a destination")
        if source.sftp or any(d.sftp for d in destinations):
            raise UsageError("--parallel needs a shell on the remote ends, not SFTP")
        codec = CodecChoice(
            "none", None, "none", f"--parallel {job.parallel} moves byte ranges uncompressed"
        )
    if job.encrypt and source.kind == "dir":
        raise UsageError("--encrypt copies files; copy a tar archive of the directory instead")
    if source.sftp or any(d.sftp for d in destinations):
        strategy = "sftp"
        reason = "SFTP on the ends without a shell pipeline; nothing runs there but sftp-server"
        if job.strategy == "sftp":
            reason = "--strategy sftp"
    elif source.kind == "dir":
        strategy = "tar"
        reason = f"a directory of {source.files} files: one tar stream, no round trip per file"
    elif job.parallel > 1:
        strategy = "exec"
        reason = f"{job.parallel} byte ranges, each over its own SSH connections"
    else:
        strategy = "exec"
        reason = "remote ends run cat/tail and tee over one SSH channel each"
        if not source.endpoint.is_remote and not remote_dsts:
            reason = "no remote end: a local copy through this machine"
    plan = Plan(job, source, list(destinations), strategy, reason, codec, ratio, setting)
    plan.digest_site, plan.digest_reason = digest_site(plan)
    return plan


def digest_site(plan: Plan) -> tuple[str, str]:
    """Where the digest of the data sent is computed, and why: (site, reason).

    ``source``: one OpenSSH leg to one OpenSSH leg with nothing to transform here, and both
    hosts have a digest tool: the source host hashes what it sends, the destination what it
    writes, and the bytes pass this machine by ``splice(2)`` (:mod:`.splice`). ``local``: this
    process hashes the stream as it passes. ``ends``: ``--parallel`` hashes the whole files
    on both ends afterwards. ``none``: ``--verify none``.
    """
    job, src = plan.job, plan.source
    algo = job.verify
    if algo == "none":
        return "none", "--verify none: nothing is hashed"
    if job.parallel > 1:
        return "ends", f"{algo} of the whole file on both ends once the byte ranges are written"
    dests = plan.destinations
    tool = digest_argv(algo, src.tools) if src.endpoint.is_remote else None
    dest_tool = digest_argv(algo, dests[0].tools) if len(dests) == 1 else None
    why_not = None
    if src.transport != "openssh" or src.kind != "file":
        why_not = "the source is not an OpenSSH leg"
    elif len(dests) != 1 or dests[0].transport != "openssh":
        why_not = "the data does not go to exactly one OpenSSH leg"
    elif plan.codec.where != "none" or job.encrypt:
        why_not = "the stream is compressed or encrypted"
    elif tool is None or dest_tool is None:
        why_not = "an end has no digest tool"
    elif not hasattr(os, "splice"):
        why_not = "this system has no splice(2)"
    if why_not is None:
        assert tool is not None
        return "source", (
            f"{algo} by {tool[0]} on the source host of what it sends and on the destination"
            " of what it writes; the bytes pass this machine untouched (splice)"
        )
    return "local", f"{algo} here of the stream as it passes ({why_not})"


async def _sample_tar(pool: SSHPool, src: Endpoint) -> bytes:
    """The first 64 KiB of the directory's tar stream."""
    if src.is_remote:
        assert src.host is not None
        line = (
            command("tar", "-C", src.path, "-cf", "-", ".")
            + " 2>/dev/null | "
            + command("head", "-c", 65536)
        )
        return (await pool.run(src.host, line, check=False)).stdout
    proc = await asyncio.create_subprocess_exec(
        "tar", "-C", src.path, "-cf", "-", ".",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        return await proc.stdout.read(65536)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def _plan_destination(
    pool: SSHPool,
    ep: Endpoint,
    base: str,
    job: CopyJob,
    is_dir: bool = False,
    survey: Survey | None = None,
) -> DestinationPlan:
    if ep.is_stdio:
        return DestinationPlan(ep, "-", False, None)
    needs = {"sh", "cat", "dd", "mv", "tee", "head"} | ({"tar"} if is_dir else set())
    try:
        via_sftp = await _uses_sftp(pool, ep, job, needs)
    except DifpipeError as err:
        return DestinationPlan(ep, ep.path, False, None, set(), err)
    if via_sftp and is_dir:
        err = UsageError(f"{ep}: a directory needs tar and a shell, not SFTP")
        return DestinationPlan(ep, ep.path, False, None, set(), err, sftp=True)
    tools = set() if via_sftp else await _tools(pool, ep)
    info = await _inspect(pool, ep, sftp=via_sftp, survey=survey)
    where = f"{ep.host}:" if ep.is_remote else ""
    if is_dir and info.kind != "dir" and not ep.path.endswith("/"):
        target_info = info  # like cp -r: a new name receives the directory's contents
        if info.kind == "file":
            err = RemoteCommandError if ep.is_remote else LocalIOError
            problem = err(f"{where}{ep.path} is a file, not a directory", host=ep.host)
            return DestinationPlan(ep, ep.path, True, info.free_bytes, tools, problem)
        return _dest_checks(ep, ep.path, target_info, tools, job, where, is_dir)
    try:
        target = resolve_target(ep.path, info, base, remote=ep.is_remote)
    except UsageError as err:
        return DestinationPlan(ep, ep.path, False, info.free_bytes, tools, err)
    if target != ep.path:
        info = await _inspect(pool, ep, target, sftp=via_sftp, survey=survey)
    plan = _dest_checks(ep, target, info, tools, job, where, is_dir)
    plan.sftp = via_sftp
    return plan


def _dest_checks(
    ep: Endpoint,
    target: str,
    info: PathInfo,
    tools: set[str],
    job: CopyJob,
    where: str,
    is_dir: bool,
) -> DestinationPlan:
    shown = f"{where}{target}"
    problem: DifpipeError | None = None
    err_cls = RemoteCommandError if ep.is_remote else LocalIOError
    if info.kind == "dir" and not is_dir:
        problem = err_cls(f"{shown} is a directory", host=ep.host)
    elif info.kind == "file" and is_dir:
        problem = err_cls(f"{shown} is a file, not a directory", host=ep.host)
    elif info.kind == "dir" and is_dir and not job.overwrite:
        problem = err_cls(f"{shown} exists", host=ep.host, hint="--no-overwrite was given")
    elif info.parent == "missing":
        parent = posixpath.dirname(target) if ep.is_remote else os.path.dirname(target)
        problem = err_cls(f"{where}{parent or '.'}: no such directory", host=ep.host)
    elif info.parent == "readonly":
        problem = err_cls(f"{shown}: permission denied", host=ep.host)
    elif info.kind == "file" and not job.overwrite:
        problem = err_cls(f"{shown} exists", host=ep.host, hint="--no-overwrite was given")
    exists = info.kind in ("file", "dir")
    return DestinationPlan(ep, target, exists, info.free_bytes, tools, problem)
