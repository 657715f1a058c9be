"""The SSH connection pool: one connection per host (per jump path), shared by every operation.

Connections open lazily, through the host's jump chain (``tunnel=``), with keepalive. Retryable
failures (refused, unreachable, timed out, link lost) are retried with exponential backoff and
jitter; everything else fails at once with an error that names the host and what to do.
Host keys are checked against known_hosts (``strict``) or trusted on first use and recorded in
DifPipe's own known_hosts file (``accept-new``). A key that differs from a recorded one is always
refused, before any credential is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import random
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from . import flowcontrol, paths
from .config import Config, ResolvedHost
from .errors import (
    AuthError,
    ConfigError,
    DifpipeError,
    HostKeyError,
    NetworkError,
    RemoteCommandError,
)
from .events import (
    ConnectionFailed,
    ConnectionLost,
    ConnectionOpened,
    ConnectionRestored,
    ConnectionRetry,
    EventBus,
    HostKeyAccepted,
    RemoteCommandFinished,
)
from .remote import TOOL_PROBE, RemoteInfo, parse_tool_probe

log = logging.getLogger(__name__)

flowcontrol.install()

# AES-GCM first: about twice the throughput of chacha20-poly1305 in asyncssh (see TESTING.md).
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
PASSWORD_COMMAND_TIMEOUT = 30.0

# Receive windows of the channels data comes in on (a source's stream). One channel moves at
# most a window per round trip: asyncssh's default 2 MiB caps it near 20 MB/s at 100 ms. The
# window is sized to the link's round trip so that WINDOW_RATE fits through, shared by the
# channels of one transfer, between the default (best on a LAN) and WINDOW_MAX. With the bounded
# re-open of flowcontrol.py a channel never holds more than its window beyond what the relay has
# taken, so this is also what a slow destination can cost in memory. The channels of one
# transfer (``--parallel`` ranges) share it down to MIN_WINDOW each: eight ranges from a LAN
# host at 2 MiB each held 16 MiB waiting for a far destination, at 256 KiB each as fast.
DEFAULT_WINDOW = 2 * 1024 * 1024
WINDOW_MAX = 32 * 1024 * 1024
MIN_WINDOW = 256 * 1024
WINDOW_RATE = 160_000_000  # bytes/s: about what one DifPipe process relays


def window_for(rtt_ms: float | None, streams: int = 1) -> int:
    """The receive window of each of ``streams`` channels over a link of ``rtt_ms``."""
    total = DEFAULT_WINDOW
    if rtt_ms is not None:
        total = max(DEFAULT_WINDOW, min(WINDOW_MAX, int(WINDOW_RATE * rtt_ms / 1000)))
    return max(MIN_WINDOW, total // max(1, streams))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for retryable connection failures."""

    attempts: int = 4
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 20.0
    jitter: float = 0.5  # the share of each delay that is random

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before try ``attempt + 1`` (``attempt`` counts from 1)."""
        rng = rng or random
        raw = min(self.max_delay, self.base_delay * self.factor ** (attempt - 1))
        return raw * (1 - self.jitter) + raw * self.jitter * rng.random()


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class CommandResult:
    host: str
    command: str
    exit_status: int | None
    stdout: bytes
    stderr: bytes
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


@dataclass
class HostConnection:
    """A live connection to one host along one jump path."""

    name: str
    path: tuple[str, ...]
    conn: asyncssh.SSHClientConnection
    auth_method: str | None
    connect_ms: float
    opened_at: float = field(default_factory=time.time)
    info: RemoteInfo | None = None
    rtt_ms: float | None = None
    lost: bool = False

    @property
    def alive(self) -> bool:
        return not self.lost and not self.conn.is_closed()


class _Client(asyncssh.SSHClient):
    """Supplies credentials one by one so we know which method succeeded, and decides host keys."""

    def __init__(self, owner: _Attempt):
        self._attempt = owner

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey):
        return self._attempt.decide_host_key(key)

    async def public_key_auth_requested(self):
        return self._attempt.next_key()

    async def password_auth_requested(self):
        return await self._attempt.password()

    def kbdint_auth_requested(self):
        return "" if self._attempt.has_password else None

    async def kbdint_challenge_received(self, name, instructions, lang, prompts):
        if not prompts:
            return []
        if len(prompts) == 1 and "password" in prompts[0][0].lower():
            pw = await self._attempt.password()
            return [pw] if pw is not None else None
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._attempt.on_lost(exc)


class _Attempt:
    """State of one connection attempt to one hop: credentials offered, host key seen."""

    def __init__(self, pool: SSHPool, rh: ResolvedHost, known: asyncssh.SSHKnownHosts):
        self.pool = pool
        self.rh = rh
        self.known = known
        self.keys: list[tuple[str, asyncssh.SSHKeyPair]] = []
        self.last_method: str | None = None
        self.tried: list[str] = []
        self.host_key_problem: str | None = None
        self.presented_key: asyncssh.SSHKey | None = None
        self.accepted_new = False
        self.has_password = bool(rh.auth.password_env or rh.auth.password_command)
        self._password_given = False
        self.connection: HostConnection | None = None

    def decide_host_key(self, key: asyncssh.SSHKey) -> bool:
        self.presented_key = key
        trusted = self.known.match(self.rh.address, "", self.rh.port)[0]
        if trusted:
            self.host_key_problem = "mismatch"
            return False
        if self.rh.host_key_policy == "accept-new":
            self.accepted_new = True
            return True
        self.host_key_problem = "unknown"
        return False

    def next_key(self):
        if not self.keys:
            return None
        label, keypair = self.keys.pop(0)
        self.last_method = label
        if label not in self.tried:
            self.tried.append(label)
        return [keypair]

    async def password(self) -> str | None:
        if not self.has_password or self._password_given:
            return None
        self._password_given = True
        self.last_method = "password"
        self.tried.append("password")
        return await self.pool.password_for(self.rh)

    def on_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.pool.connection_lost(self.connection, exc)


def _known_hosts_files(rh: ResolvedHost, own: Path) -> list[Path]:
    files = [Path(p).expanduser() for p in rh.known_hosts]
    if own not in files:
        files.append(own)
    return files


def _load_known_hosts(files: list[Path]) -> asyncssh.SSHKnownHosts:
    text = []
    for f in files:
        try:
            text.append(f.read_text())
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot read known_hosts file {f}: {exc.strerror}") from exc
    try:
        return asyncssh.import_known_hosts("\n".join(text))
    except (ValueError, asyncssh.KeyImportError) as exc:
        names = ", ".join(str(f) for f in files)
        raise ConfigError(f"a known_hosts file is malformed ({names}): {exc}") from exc


def known_hosts_entry(address: str, port: int, key: asyncssh.SSHKey) -> str:
    pattern = address if port == 22 else f"[{address}]:{port}"
    return f"{pattern} {key.export_public_key('openssh').decode().strip()}\n"


def record_host_key(path: Path, address: str, port: int, key: asyncssh.SSHKey) -> None:
    """Append a trusted key to ``path`` (0600), under an exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(known_hosts_entry(address, port, key))
        fh.flush()
        os.fsync(fh.fileno())


def fingerprint(key: asyncssh.SSHKey | None) -> str:
    return key.get_fingerprint("sha256") if key is not None else "unknown"


class SSHPool:
    """One connection per host and jump path, opened lazily, reused, reconnected on demand."""

    def __init__(
        self,
        config: Config,
        *,
        bus: EventBus | None = None,
        retry: RetryPolicy = RetryPolicy(),
        known_hosts_file: Path | None = None,
        ciphers: tuple[str, ...] = PREFERRED_CIPHERS,
    ):
        self.config = config
        self.bus = bus or EventBus()
        self.retry = retry
        self.known_hosts_file = known_hosts_file or paths.known_hosts_path()
        self.ciphers = ciphers
        self._conns: dict[tuple[str, ...], HostConnection] = {}
        # more connections along a path, opened when sshd refused a session (MaxSessions)
        self._spares: dict[tuple[str, ...], list[HostConnection]] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self._ever_lost: set[tuple[str, ...]] = set()
        self._passwords: dict[str, str] = {}
        self._closing = False
        self._on_close: list[Callable[[], Awaitable[None]]] = []

    # -- public API --------------------------------------------------------------------------

    async def connect(self, name: str, *, retry: RetryPolicy | None = None) -> HostConnection:
        """The live connection to host ``name``, opened (with retries) if needed."""
        if self._closing:
            raise NetworkError("the connection pool is shutting down", host=name)
        chain = self.config.jump_chain(name)
        target = self.config.resolve(name)
        hops = [*chain, target]
        tunnel: HostConnection | None = None
        for i, rh in enumerate(hops):
            path = tuple(h.name for h in hops[: i + 1])
            tunnel = await self._hop(rh, path, tunnel, retry or self.retry, target=name)
        assert tunnel is not None
        return tunnel

    async def run(
        self,
        name: str,
        cmd: str,
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run a shell line (built with :mod:`difpipe_tui.core.remote`) on host ``name``."""
        hc = await self.connect(name)
        start = time.perf_counter()
        try:
            proc = await asyncio.wait_for(self._completed(name, cmd, input), timeout)
        except TimeoutError as exc:
            self._drop(hc)
            raise NetworkError(
                f"no answer within {timeout:g}s running a command",
                host=name,
                hint="the link may be down; it will be retried",
            ) from exc
        except (asyncssh.Error, OSError) as exc:
            self._drop(hc)
            raise classify(exc, name) from exc
        duration = (time.perf_counter() - start) * 1000
        stdout = proc.stdout if isinstance(proc.stdout, bytes) else b""
        stderr = proc.stderr if isinstance(proc.stderr, bytes) else b""
        status = proc.exit_status
        self.bus.publish(
            RemoteCommandFinished(
                host_name=name, command=cmd, exit_status=status, duration_ms=duration
            )
        )
        result = CommandResult(name, cmd, status, stdout, stderr, duration)
        if check and status != 0:
            first = stderr.decode(errors="replace").strip().splitlines()
            detail = f": {first[-1]}" if first else ""
            raise RemoteCommandError(
                f"remote command failed with exit status {status}{detail}",
                host=name,
                exit_status=status,
                stderr=stderr.decode(errors="replace"),
            )
        return result

    async def _completed(
        self, name: str, cmd: str, input: bytes | None
    ) -> asyncssh.SSHCompletedProcess:
        process = await self.create_process(name, cmd, input=input, encoding=None)
        return await process.wait(check=False)

    async def create_process(self, name: str, cmd: str, **kw: Any) -> asyncssh.SSHClientProcess:
        """Start ``cmd`` on host ``name`` in a session channel of its own (``kw``: asyncssh's).

        sshd caps the sessions of one connection (MaxSessions, 10 by default). When it refuses
        a channel, the command runs on another connection to the host, opened if none of the
        pool's has room. A new connection that refuses its first channel refuses for another
        reason: that error is raised.
        """
        hc = await self.connect(name)
        tried: list[HostConnection] = []
        fresh = reopened = False
        while True:
            try:
                return await hc.conn.create_process(cmd, **kw)
            except asyncssh.ChannelOpenError:
                if not hc.alive and not reopened:
                    # The connection died before the channel opened: nothing ran; reconnect.
                    reopened = True
                    hc = await self.connect(name)
                    continue
                if fresh:  # sshd gives no reason ("open failed"): MaxSessions is one cause
                    raise
                tried.append(hc)
                hc, fresh = await self._spare(name, hc.path, tried)

    async def _spare(
        self, name: str, path: tuple[str, ...], tried: list[HostConnection]
    ) -> tuple[HostConnection, bool]:
        """Another connection along ``path`` than those ``tried``; True when newly opened."""
        async with self._locks.setdefault(("spare", *path), asyncio.Lock()):
            spares = [hc for hc in self._spares.get(path, []) if hc.alive]
            self._spares[path] = spares
            for hc in spares:
                if hc not in tried:
                    return hc, False
            await self.connect(name)  # the jump hosts on the way are up
            tunnel = self._conns.get(path[:-1]) if len(path) > 1 else None
            hc = await self._open(self.config.resolve(name), path, tunnel)
            spares.append(hc)
            return hc, True

    async def info(self, name: str, *, refresh: bool = False) -> RemoteInfo:
        """What host ``name`` has (tools, OS/arch, disk), probed once per connection."""
        hc = await self.connect(name)
        if hc.info is not None and not refresh:
            return hc.info
        sftp = None
        try:
            res = await self.run(name, TOOL_PROBE, timeout=30, check=False)
            info = parse_tool_probe(res.text) if res.ok else None
        except RemoteCommandError:
            info = None
        if info is None or "sh" not in info.tools:
            sftp = await self._has_sftp(hc)
            info = RemoteInfo(shell=False, sftp=sftp)
        hc.info = info
        return info

    async def ping(self, name: str, *, timeout: float = 10.0) -> float:
        """Round trip in ms of an SSH keepalive request (what ``ServerAliveInterval`` sends).

        It measures the link and sshd, not the start-up of a remote shell.
        """
        hc = await self.connect(name)
        request = getattr(hc.conn, "_make_global_request", None)
        start = time.perf_counter()
        try:
            if request is None:  # an asyncssh without it: time a no-op command instead
                await asyncio.wait_for(hc.conn.run("exit 0", check=False), timeout)
            else:
                await asyncio.wait_for(request(b"keepalive@openssh.com"), timeout)
        except TimeoutError as exc:
            raise NetworkError(f"no answer to a keepalive within {timeout:g}s", host=name) from exc
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, name) from exc
        return (time.perf_counter() - start) * 1000

    async def rtt(self, name: str, samples: int = 3) -> float:
        """The link's round trip to host ``name`` in ms, measured once per connection.

        The least of a few keepalive round trips: a busy machine only ever adds to one.
        """
        hc = await self.connect(name)
        if hc.rtt_ms is None:
            hc.rtt_ms = min([await self.ping(name) for _ in range(max(1, samples))])
        return hc.rtt_ms

    def window(self, name: str, streams: int = 1) -> int:
        """The receive window for a stream from host ``name`` (see :func:`window_for`)."""
        hc = next((h for p, h in self._conns.items() if p[-1] == name and h.alive), None)
        return window_for(hc.rtt_ms if hc is not None else None, streams)

    async def sftp(self, name: str) -> asyncssh.SFTPClient:
        hc = await self.connect(name)
        try:
            return await hc.conn.start_sftp_client()
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, name) from exc

    def connected(self, name: str) -> bool:
        return any(p[-1] == name and hc.alive for p, hc in self._conns.items())

    async def disconnect(self, name: str) -> None:
        for path, hc in list(self._conns.items()):
            if name in path:
                self._conns.pop(path, None)
                hc.lost = True
                hc.conn.close()
        for path in [p for p in self._spares if name in p]:
            for hc in self._spares.pop(path):
                hc.lost = True
                hc.conn.close()

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await ``callback()`` when the pool closes, before its connections close."""
        self._on_close.append(callback)

    async def close(self, timeout: float = 5.0) -> None:
        """Close every connection, innermost first, waiting at most ``timeout`` seconds.

        What registered with :meth:`on_close` (e.g. OpenSSH legs that use the pool) stops first.
        """
        self._closing = True
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                log.exception("a close callback of the SSH pool failed")
        spares = [hc for group in self._spares.values() for hc in group]
        conns = sorted([*self._conns.values(), *spares], key=lambda h: -len(h.path))
        self._conns.clear()
        self._spares.clear()
        for hc in conns:
            hc.lost = True
            hc.conn.close()
        if conns:
            waits = [hc.conn.wait_closed() for hc in conns]
            try:
                await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), timeout)
            except TimeoutError:
                for hc in conns:
                    hc.conn.abort()

    async def __aenter__(self) -> SSHPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connection management ---------------------------------------------------------------

    async def _hop(
        self,
        rh: ResolvedHost,
        path: tuple[str, ...],
        tunnel: HostConnection | None,
        retry: RetryPolicy,
        *,
        target: str,
    ) -> HostConnection:
        lock = self._locks.setdefault(path, asyncio.Lock())
        async with lock:
            hc = self._conns.get(path)
            if hc is not None and hc.alive:
                return hc
            attempt = 0
            while True:
                attempt += 1
                try:
                    hc = await self._open(rh, path, tunnel)
                except DifpipeError as err:
                    if err.retryable and attempt < retry.attempts and not self._closing:
                        delay = retry.delay(attempt)
                        self.bus.publish(
                            ConnectionRetry(
                                host_name=rh.name, attempt=attempt, delay=delay, reason=str(err)
                            )
                        )
                        await asyncio.sleep(delay)
                        if tunnel is not None and not tunnel.alive:
                            raise
                        continue
                    self.bus.publish(
                        ConnectionFailed(
                            host_name=rh.name,
                            error=str(err),
                            exit_code=int(err.exit_code),
                            retryable=err.retryable,
                        )
                    )
                    if rh.name != target:
                        err.message = f"via jump host {rh.name}: {err.message}"
                        err.host = target
                        err.args = (err.render(),)
                    raise
                self._conns[path] = hc
                if path in self._ever_lost:
                    self._ever_lost.discard(path)
                    self.bus.publish(ConnectionRestored(host_name=rh.name, attempts=attempt))
                return hc

    async def _open(
        self, rh: ResolvedHost, path: tuple[str, ...], tunnel: HostConnection | None
    ) -> HostConnection:
        known = _load_known_hosts(_known_hosts_files(rh, self.known_hosts_file))
        attempt = _Attempt(self, rh, known)
        agent = await self._load_keys(rh, attempt)
        start = time.perf_counter()
        try:
            conn = await asyncssh.connect(
                rh.address,
                rh.port,
                tunnel=tunnel.conn if tunnel else (),
                config=None,
                username=rh.user,
                client_factory=lambda: _Client(attempt),
                known_hosts=known,
                client_keys=None,
                agent_path=None,
                password=None,
                kbdint_auth=attempt.has_password,
                public_key_auth=bool(attempt.keys),
                connect_timeout=rh.connect_timeout,
                login_timeout=max(rh.connect_timeout * 3, 30),
                keepalive_interval=rh.keepalive_interval,
                keepalive_count_max=rh.keepalive_count_max,
                encryption_algs=list(self.ciphers),
                compression_algs=None,
            )
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise self._classify_connect(exc, rh, attempt) from exc
        finally:
            if agent is not None:
                agent.close()
        connect_ms = (time.perf_counter() - start) * 1000
        if attempt.accepted_new and attempt.presented_key is not None:
            record_host_key(self.known_hosts_file, rh.address, rh.port, attempt.presented_key)
            self.bus.publish(
                HostKeyAccepted(
                    host_name=rh.name,
                    fingerprint=fingerprint(attempt.presented_key),
                    known_hosts=str(self.known_hosts_file),
                )
            )
        hc = HostConnection(
            name=rh.name,
            path=path,
            conn=conn,
            auth_method=attempt.last_method,
            connect_ms=connect_ms,
        )
        attempt.connection = hc
        self.bus.publish(
            ConnectionOpened(
                host_name=rh.name,
                via=path[:-1],
                auth_method=attempt.last_method,
                latency_ms=round(connect_ms, 1),
            )
        )
        return hc

    async def _load_keys(self, rh: ResolvedHost, attempt: _Attempt):
        """Queue the configured keys (certificate first, then key files, then the agent's)."""
        auth = rh.auth
        for key_file in auth.key_files:
            kpath = Path(key_file).expanduser()
            cert = Path(auth.certificate).expanduser() if auth.certificate else None
            if cert is None and Path(f"{kpath}-cert.pub").exists():
                cert = Path(f"{kpath}-cert.pub")
            try:
                pairs = asyncssh.load_keypairs([(str(kpath), str(cert))] if cert else [str(kpath)])
            except FileNotFoundError as exc:
                raise ConfigError(
                    f"hosts.{rh.name}.auth.key_files: {exc.filename or kpath}: no such file",
                    hint="fix the path or remove it",
                ) from exc
            except asyncssh.KeyImportError as exc:
                hint = "load it into ssh-agent (ssh-add) and set agent = true"
                if "passphrase" not in str(exc).lower():
                    hint = "is it an OpenSSH private key?"
                raise ConfigError(
                    f"hosts.{rh.name}.auth.key_files: cannot load {kpath}: {exc}", hint=hint
                ) from exc
            except OSError as exc:
                raise ConfigError(
                    f"hosts.{rh.name}.auth.key_files: cannot read {kpath}: {exc.strerror}"
                ) from exc
            label = "certificate" if cert else "publickey"
            attempt.keys.extend((label, kp) for kp in pairs)
        agent = None
        if auth.agent:
            sock = auth.agent_path or os.environ.get("SSH_AUTH_SOCK")
            if sock:
                try:
                    agent = await asyncssh.connect_agent(os.path.expanduser(sock))
                    agent_keys = await agent.get_keys() if agent else []
                except (OSError, asyncssh.Error, ValueError) as exc:
                    log.info("%s: ssh-agent at %s not usable: %s", rh.name, sock, exc)
                    agent_keys = []
                attempt.keys.extend(("agent", kp) for kp in agent_keys)
        return agent

    async def password_for(self, rh: ResolvedHost) -> str | None:
        if rh.name in self._passwords:
            return self._passwords[rh.name]
        auth = rh.auth
        if auth.password_env:
            value = os.environ.get(auth.password_env)
            if value is None:
                raise AuthError(
                    f"environment variable {auth.password_env} (hosts.{rh.name}.auth.password_env)"
                    " is not set",
                    host=rh.name,
                    hint=f"export {auth.password_env} before running difpipe",
                )
        elif auth.password_command:
            value = await _run_password_command(rh.name, auth.password_command)
        else:
            return None
        self._passwords[rh.name] = value
        return value

    def connection_lost(self, hc: HostConnection, exc: Exception | None) -> None:
        if hc.lost or self._closing:
            hc.lost = True
            return
        hc.lost = True
        if self._conns.get(hc.path) is hc:
            self._conns.pop(hc.path, None)
            self._ever_lost.add(hc.path)
        reason = str(exc) if exc else "closed by the remote end"
        self.bus.publish(ConnectionLost(host_name=hc.name, reason=reason))

    def _drop(self, hc: HostConnection) -> None:
        if not hc.conn.is_closed() and hc.alive:
            return
        self.connection_lost(hc, None)

    async def _has_sftp(self, hc: HostConnection) -> bool:
        try:
            sftp = await hc.conn.start_sftp_client()
        except (asyncssh.Error, OSError):
            return False
        sftp.exit()
        return True

    def _classify_connect(
        self, exc: BaseException, rh: ResolvedHost, attempt: _Attempt
    ) -> DifpipeError:
        where = f"{rh.user}@{rh.address}:{rh.port}"
        if attempt.host_key_problem == "mismatch":
            return HostKeyError(
                f"HOST KEY MISMATCH for {where}: it presented {fingerprint(attempt.presented_key)}"
                " which differs from the key in known_hosts; nothing was sent",
                host=rh.name,
                hint="if the host was reinstalled, remove its old line from known_hosts;"
                " otherwise someone may be intercepting the connection",
            )
        if attempt.host_key_problem == "unknown":
            return HostKeyError(
                f"unknown host key for {where} ({fingerprint(attempt.presented_key)});"
                " nothing was sent",
                host=rh.name,
                hint="verify the fingerprint, then add it to known_hosts"
                ' or set host_key_policy = "accept-new"',
            )
        if isinstance(exc, asyncssh.PermissionDenied):
            tried = ", ".join(attempt.tried) or "none configured"
            return AuthError(
                f"authentication failed as {rh.user} (tried: {tried})",
                host=rh.name,
                hint="check the key file, the agent (ssh-add -l) or the password source",
            )
        return classify(exc, rh.name, where=where, timeout=rh.connect_timeout, tunnel=True)


def classify(
    exc: BaseException,
    host: str,
    *,
    where: str | None = None,
    timeout: float | None = None,
    tunnel: bool = False,
) -> DifpipeError:
    """Map an asyncssh / OS exception to a DifPipe error with its exit code.

    ``tunnel``: the error came while connecting, where the only channel is the jump host's
    forwarding to the next hop; elsewhere a refused channel is a session."""
    if isinstance(exc, DifpipeError):
        return exc
    target = where or host
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostKeyError(f"host key of {target} not verifiable: {exc.reason}", host=host)
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthError(f"authentication failed: {exc.reason}", host=host)
    if isinstance(exc, TimeoutError):
        after = f" after {timeout:g}s" if timeout else ""
        return NetworkError(
            f"timed out connecting to {target}{after}",
            host=host,
            hint="is the host up and the address right?",
        )
    if isinstance(exc, ConnectionRefusedError):
        return NetworkError(f"connection refused by {target}", host=host, hint="is sshd running?")
    if isinstance(exc, OSError) and exc.__class__.__name__ == "gaierror":
        err = NetworkError(
            f"cannot resolve address of {target}: {exc.strerror or exc}",
            host=host,
            hint="check the address in the config",
        )
        return err
    if isinstance(exc, asyncssh.ConnectionLost):
        return NetworkError(f"connection to {target} lost: {exc.reason}", host=host)
    if isinstance(exc, asyncssh.ChannelOpenError):
        err = NetworkError(f"cannot open a channel on {target}: {exc.reason}", host=host)
        if tunnel and exc.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED:
            err.retryable = False
            err.hint = "the jump host must allow TCP forwarding (AllowTcpForwarding yes)"
            err.args = (err.render(),)
        elif not tunnel:
            err.retryable = False
            err.hint = (
                "sshd refused a session, on a new connection too: does its sshd_config"
                " (MaxSessions, a Match block) allow sessions for this user?"
            )
            err.args = (err.render(),)
        return err
    if isinstance(exc, asyncssh.DisconnectError):
        err = NetworkError(f"{target} disconnected: {exc.reason}", host=host)
        if isinstance(exc, asyncssh.KeyExchangeFailed | asyncssh.ProtocolError):
            err.retryable = False
        return err
    if isinstance(exc, OSError):
        return NetworkError(f"cannot reach {target}: {exc.strerror or exc}", host=host)
    return NetworkError(f"SSH error with {target}: {exc}", host=host)


async def _run_password_command(host: str, cmd: str) -> str:
    try:
        proc = await asyncio.create_subprocess_exec(
            *shlex.split(cmd),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except (OSError, ValueError) as exc:
        raise AuthError(
            f"hosts.{host}.auth.password_command cannot be started: {exc}", host=host
        ) from exc
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PASSWORD_COMMAND_TIMEOUT)
    except TimeoutError as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise AuthError(
            f"hosts.{host}.auth.password_command gave no answer within"
            f" {PASSWORD_COMMAND_TIMEOUT:g}s",
            host=host,
        ) from exc
    if proc.returncode != 0:
        raise AuthError(
            f"hosts.{host}.auth.password_command failed with exit status {proc.returncode}",
            host=host,
        )
    lines = out.decode(errors="replace").splitlines()
    if not lines or not lines[0]:
        raise AuthError(f"hosts.{host}.auth.password_command printed no password", host=host)
    return lines[0]
