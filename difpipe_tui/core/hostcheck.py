"""``hosts check``: connect to hosts in parallel and report what each one is and has."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from .errors import DifpipeError, ExitCode
from .events import HostChecked

if TYPE_CHECKING:
    from .ssh import SSHPool
    from .store import Store

LATENCY_SAMPLES = 3
SEVERITY = (ExitCode.HOST_KEY, ExitCode.AUTH, ExitCode.CONFIG, ExitCode.REMOTE, ExitCode.NETWORK)


@dataclass
class HostCheckResult:
    name: str
    address: str
    role: str
    reachable: bool = False
    via: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    connect_ms: float | None = None
    auth_method: str | None = None
    os: str | None = None
    arch: str | None = None
    tools: list[str] = field(default_factory=list)
    shell: bool | None = None
    free_bytes: int | None = None
    checked_at: float = field(default_factory=time.time)
    error: str | None = None
    error_kind: str | None = None
    exit_code: int = 0
    retryable: bool | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


async def check_host(pool: SSHPool, name: str) -> HostCheckResult:
    host = pool.config.host(name)
    result = HostCheckResult(
        name=name, address=f"{host.address}:{host.port}", role=host.role, via=list(host.jump)
    )
    try:
        hc = await pool.connect(name)
        result.connect_ms = round(hc.connect_ms, 1)
        result.auth_method = hc.auth_method
        info = await pool.info(name, refresh=True)
        samples = [await pool.ping(name) for _ in range(LATENCY_SAMPLES)]
        result.latency_ms = round(sorted(samples)[len(samples) // 2], 1)
        result.reachable = True
        result.os, result.arch = info.os, info.arch
        result.tools = info.tool_names
        result.shell = info.shell
        result.free_bytes = info.disk_free_bytes
    except DifpipeError as err:
        result.reachable = False
        result.error = str(err)
        result.error_kind = err.kind
        result.exit_code = int(err.exit_code)
        result.retryable = err.retryable
    pool.bus.publish(
        HostChecked(
            host_name=name,
            reachable=result.reachable,
            latency_ms=result.latency_ms,
            error=result.error,
        )
    )
    return result


async def check_hosts(pool: SSHPool, names: list[str]) -> list[HostCheckResult]:
    """Check every host at once; the results keep the order of ``names``."""
    return list(await asyncio.gather(*(check_host(pool, n) for n in names)))


def overall_exit_code(results: list[HostCheckResult]) -> ExitCode:
    """OK when all are reachable; the failure's own code when all failed alike; else PARTIAL."""
    failed = [r for r in results if not r.reachable]
    if not failed:
        return ExitCode.OK
    if len(failed) < len(results):
        return ExitCode.PARTIAL
    codes = {r.exit_code for r in failed}
    if len(codes) == 1:
        return ExitCode(codes.pop())
    # all down for different reasons: the most serious one decides
    for code in SEVERITY:
        if int(code) in codes:
            return code
    return ExitCode.NETWORK


def record(store: Store, results: list[HostCheckResult]) -> None:
    """Keep each result as its host's last check (what ``hosts list`` and the console show)."""
    for r in results:
        store.record_host_status(
            r.name,
            reachable=r.reachable,
            latency_ms=r.latency_ms,
            os=r.os,
            arch=r.arch,
            tools=dict.fromkeys(r.tools, True),
            free_bytes=r.free_bytes,
            error=r.error,
            checked_at=r.checked_at,
        )
