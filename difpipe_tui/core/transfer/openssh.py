"""OpenSSH legs: the bulk data of a relay through one ``ssh`` client process per leg.

One Python process moving data over asyncssh tops out near 100 MB/s (the cost is per-packet
Python work, see TESTING.md), while ``ssh src cat f | ssh dst 'cat > f'`` runs one OpenSSH
process per leg and does about twice that. Here the two legs of a relay are OpenSSH processes
and the orchestrator only moves 1 MiB chunks between pipes (enlarged to 1 MiB) with blocking
``os.read`` / ``os.write`` in worker threads, hashing them as it goes (hashlib releases the
GIL). When the orchestrator stops reading, the pipe fills, ssh stops reading, and SSH flow
control stops the sender: pause and backpressure work as with asyncssh.

:class:`OpenSSHContext` writes a private ssh_config (``ssh -F``, so neither ~/.ssh/config nor
/etc/ssh/ssh_config applies) into a private directory: one ``Host difpipe-NAME`` block per
configured host with the same keys, agent, jump chain, host-key policy and known_hosts files
as the asyncssh pool (:mod:`difpipe_tui.core.ssh`). Each host gets one master connection
(``ControlMaster``) that the legs share. Passwords never appear on a command line or in a
file: an ``SSH_ASKPASS`` helper prints them from the environment of the one ssh process that
needs them. A host whose settings cannot be written as ssh_config is reported by
:meth:`OpenSSHContext.supports`, so that the engine keeps asyncssh for it.

:class:`OpenSSHSource` and :class:`OpenSSHSink` run exactly the command lines of
:class:`~.ends.RemoteSource` and :class:`~.ends.RemoteSink` (they subclass them), with the
same failure markers and error classification; a sink's small commands (prepare, land,
digests) still run over the asyncssh pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import math
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..config import Config, ResolvedHost
from ..errors import (
    AuthError,
    ConfigError,
    DifpipeError,
    HostKeyError,
    NetworkError,
    RemoteCommandError,
)
from .ends import FAIL_MARK, SENT_MARK, RemoteSink, RemoteSource, _remote_error, reader_end
from .verify import DIGEST_MARK, parse_digest_output, source_digest_output

if TYPE_CHECKING:
    from ..ssh import SSHPool

__all__ = [
    "OPENSSH_CIPHERS",
    "PIPE_SIZE",
    "OpenSSHContext",
    "OpenSSHSink",
    "OpenSSHSource",
    "ssh_available",
]

#: AEAD ciphers first (AES-GCM is fastest with AES-NI); CTR only for servers without them.
OPENSSH_CIPHERS = (
    "aes128-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
PIPE_SIZE = 1024 * 1024
MIN_VERSION = (7, 6)  # StrictHostKeyChecking accept-new; ProxyJump came in 7.3
ASKPASS_FORCE_VERSION = (8, 4)  # SSH_ASKPASS_REQUIRE=force
CONTROL_PERSIST = 60  # seconds an idle master outlives its last leg (and a crashed orchestrator)
SINK_FINISH_TIMEOUT = 300.0
ABORT_TIMEOUT = 5.0
CONTROL_TIMEOUT = 10.0  # ssh -O check / exit
#: How long a master's ``ssh -O check`` stays good while its process lives: the legs of one
#: copy start right after the master opened, and each check costs an ssh process (~40 ms).
CHECK_FRESH = 5.0
#: Seconds between two looks at a waiting source's stderr for where its reader ended.
LOOK = 0.1

_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_SAFE_DIR = re.compile(r"[A-Za-z0-9_./-]+")  # ProxyJump pastes the -F path into a shell line
_MAX_DIR = 60  # the control socket path (DIR/mN) must fit in sun_path (108 bytes)
_DIR_PREFIX = "difpipe-ssh-"
_OWNER = "owner"
_PW_VAR = "DIFPIPE_ASKPASS_"
_ONLY_PW = "DIFPIPE_ASKPASS"


def ssh_available() -> str | None:
    """The path of the OpenSSH client, or None when there is none."""
    return shutil.which("ssh")


def _ssh_version(ssh: str) -> tuple[int, int] | None:
    """(major, minor) of the OpenSSH client at ``ssh`` (``ssh -V``), None when not OpenSSH."""
    try:
        out = subprocess.run([ssh, "-V"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", out.stderr + out.stdout)
    return (int(found.group(1)), int(found.group(2))) if found else None


# --------------------------------------------------------------------------- ssh_config values


class _Unrepresentable(ValueError):
    """A value that cannot be written into ssh_config without changing its meaning."""


def _check_text(value: str, what: str) -> None:
    for bad, name in (
        ("\n", "a newline"),
        ("\r", "a carriage return"),
        ("\x00", "a NUL byte"),
        ('"', 'a double quote (")'),
        ("\\", "a backslash"),
    ):
        if bad in value:
            raise _Unrepresentable(f"{what} contains {name}")
    if not value:
        raise _Unrepresentable(f"{what} is empty")


def _path(value: str, what: str) -> str:
    """A file argument of a keyword that expands % tokens and ${VAR}: absolute and escaped."""
    _check_text(value, what)
    if "${" in value:
        raise _Unrepresentable(f"{what} contains ${{, which ssh would expand")
    value = os.path.abspath(value).replace("%", "%%")
    return f'"{value}"'


def _user(value: str, what: str) -> str:
    _check_text(value, what)
    if re.search(r"[%$\s'`;&|<>(){}*?!,]", value) or value.startswith("-"):
        raise _Unrepresentable(f"{what} {value!r} has characters ssh refuses or expands")
    return value


def _host_address(value: str, what: str) -> str:
    _check_text(value, what)
    if not re.fullmatch(r"[A-Za-z0-9._:%-]+", value) or value.startswith("-"):
        raise _Unrepresentable(f"{what} {value!r} is not a plain host name or address")
    return value.replace("%", "%%")  # HostName expands %h and %%


def _seconds(value: float) -> int:
    return max(0, math.ceil(value))


def _pw_var(user: str, address: str) -> str:
    """The environment variable that carries the password of ``user@address``."""
    tag = hashlib.sha256(f"{user}@{address}".encode()).hexdigest()[:16].upper()
    return _PW_VAR + tag


# --------------------------------------------------------------------------- the context


@dataclass
class _Master:
    alias: str
    socket: Path
    pid: int | None = None
    checked: float | None = None  # time.monotonic() of its last good check


class OpenSSHContext:
    """A private ssh_config, askpass helper and control masters for the configured hosts.

    ``known_hosts_file`` is DifPipe's own known_hosts file (the pool's ``known_hosts_file``):
    read for every host and, with ``accept-new``, where new keys are recorded. ``pool`` (an
    :class:`~difpipe_tui.core.ssh.SSHPool`) resolves ``password_command`` once, shared with
    asyncssh, and runs the sinks' small commands. Call :meth:`close` when done (it stops the
    masters and removes the directory); an idle master also exits by itself after
    ``ControlPersist`` seconds.
    """

    def __init__(
        self,
        config: Config,
        known_hosts_file: str | os.PathLike[str],
        *,
        pool: SSHPool | None = None,
        ssh_path: str | None = None,
    ):
        self.config = config
        self.known_hosts_file = Path(known_hosts_file)
        self.pool = pool
        self.ssh = ssh_path or ssh_available()
        self.version: tuple[int, int] | None = None
        self.dir: Path | None = None
        self.config_file: Path | None = None
        self.askpass: Path | None = None
        self._aliases: dict[str, str] = {}
        self._why_not: dict[str, str] = {}
        self._masters: dict[str, _Master] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._warming: dict[str, asyncio.Task[None]] = {}
        self._legs: set[_Leg] = set()
        self._passwords: dict[str, str] = {}
        self._closed = False
        if self.ssh is None:
            for name in config.hosts:
                self._why_not[name] = "the OpenSSH client (ssh) is not installed"
            self._finalizer = weakref.finalize(self, lambda: None)
            return
        self.version = _ssh_version(self.ssh)
        if self.version is None or self.version < MIN_VERSION:
            shown = ".".join(map(str, self.version)) if self.version else "of unknown version"
            for name in config.hosts:
                self._why_not[name] = (
                    f"the OpenSSH client {self.ssh} is {shown}; DifPipe needs OpenSSH"
                    f" {MIN_VERSION[0]}.{MIN_VERSION[1]} or later (accept-new, ProxyJump)"
                )
            self._finalizer = weakref.finalize(self, lambda: None)
            return
        self.dir = _private_dir()
        self._finalizer = weakref.finalize(self, _cleanup, self.dir, self._masters)
        self._write_files()

    @classmethod
    def for_pool(cls, pool: SSHPool, *, ssh_path: str | None = None) -> OpenSSHContext:
        """A context with the pool's config and known_hosts file, sharing its passwords."""
        return cls(pool.config, pool.known_hosts_file, pool=pool, ssh_path=ssh_path)

    # -- what can go through OpenSSH -----------------------------------------------------------

    def supports(self, name: str) -> bool:
        """Whether host ``name`` (and its whole jump chain) can be reached through OpenSSH."""
        return not self._closed and name in self._aliases and name not in self._why_not

    def why_not(self, name: str) -> str | None:
        """Why :meth:`supports` is False for ``name`` (None when it is True)."""
        if self._closed:
            return "the OpenSSH context is closed"
        if name not in self.config.hosts:
            return "no such host in the config"
        return self._why_not.get(name)

    @property
    def unsupported(self) -> dict[str, str]:
        """Every configured host that cannot use OpenSSH, with the reason."""
        return dict(self._why_not)

    def alias(self, name: str) -> str:
        """The ``Host`` alias of ``name`` in the generated ssh_config."""
        if not self.supports(name):
            raise ConfigError(f"cannot use OpenSSH for this host: {self.why_not(name)}", host=name)
        return self._aliases[name]

    # -- the generated files -------------------------------------------------------------------

    def _write_files(self) -> None:
        assert self.dir is not None
        blocks: list[str] = [
            "# Written by DifPipe for its OpenSSH transfer legs; removed when they end.",
            "# Generated from the DifPipe config: edit that instead.",
            "",
        ]
        for name in self.config.hosts:
            self._aliases[name] = f"difpipe-{name}"  # ssh matches Host patterns case-sensitively
        hop_blocks: dict[str, list[str]] = {}
        pw_hosts: dict[str, tuple[str, str]] = {}
        for index, name in enumerate(self.config.hosts):
            try:
                rh = self.config.resolve(name)
                chain = self.config.jump_chain(name)
                for hop in chain:
                    if hop.name not in hop_blocks:
                        try:
                            hop_blocks[hop.name] = self._block(self._hop_alias(hop.name), hop)
                        except _Unrepresentable as exc:
                            raise _Unrepresentable(f"jump host {hop.name}: {exc}") from None
                block = self._block(
                    self._aliases[name],
                    rh,
                    jumps=[self._hop_alias(h.name) for h in chain],
                    control=self.dir / f"m{index}",
                )
                self._check_passwords([*chain, rh], pw_hosts)
            except _Unrepresentable as exc:
                self._why_not[name] = str(exc)
                continue
            except DifpipeError as exc:
                self._why_not[name] = exc.message
                continue
            blocks += block
        for block in hop_blocks.values():
            blocks += block
        self.config_file = self.dir / "ssh_config"
        _write_private(self.config_file, "\n".join(blocks) + "\n", 0o600)
        self.askpass = self.dir / "askpass"
        _write_private(self.askpass, _askpass_script(pw_hosts.values()), 0o700)
        if pw_hosts and self.version is not None and self.version < ASKPASS_FORCE_VERSION:
            for name in self.config.hosts:
                if name not in self._why_not and self._password_hops(name):
                    self._why_not[name] = (
                        "password login needs SSH_ASKPASS_REQUIRE=force (OpenSSH 8.4 or later)"
                    )
        if pw_hosts and _noexec(self.dir):
            for name in self.config.hosts:
                if name not in self._why_not and self._password_hops(name):
                    self._why_not[name] = (
                        f"the private directory {self.dir} is on a noexec file system,"
                        " so the SSH_ASKPASS helper for the password cannot run"
                    )
        with contextlib.suppress(OSError):
            self.known_hosts_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    @staticmethod
    def _hop_alias(name: str) -> str:
        return f"difpipe+{name}"  # "+" is not allowed in host names: no clash with targets

    def _check_passwords(
        self, hops: list[ResolvedHost], pw_hosts: dict[str, tuple[str, str]]
    ) -> None:
        seen: dict[str, str] = {}
        for rh in hops:
            if not (rh.auth.password_env or rh.auth.password_command):
                continue
            var = _pw_var(rh.user, rh.address)
            source = rh.auth.password_env or rh.auth.password_command or ""
            if seen.get(var, source) != source:
                raise _Unrepresentable(
                    f"two hops log in as {rh.user}@{rh.address} with different passwords"
                )
            seen[var] = source
            pw_hosts[var] = (rh.user, rh.address)

    def _block(
        self,
        alias: str,
        rh: ResolvedHost,
        *,
        jumps: list[str] | None = None,
        control: Path | None = None,
    ) -> list[str]:
        """The ``Host`` block of one host (a target with a master, or a jump hop without)."""
        assert self.dir is not None
        where = f"hosts.{rh.name}"
        auth = rh.auth
        password = bool(auth.password_env or auth.password_command)
        opts: list[tuple[str, str]] = [
            ("HostName", _host_address(rh.address, f"{where}.address")),
            ("Port", str(int(rh.port))),
            ("User", _user(rh.user, f"{where}.user")),
        ]
        agent = None
        if auth.agent:
            agent = auth.agent_path or os.environ.get("SSH_AUTH_SOCK") or None
        for i, key in enumerate(auth.key_files):
            opts.append(("IdentityFile", _path(key, f"{where}.auth.key_files[{i}]")))
        if not auth.key_files:
            # Never the default ~/.ssh/id_* files (the pool does not use them either):
            # a file that does not exist stands in for "no key files".
            opts.append(("IdentityFile", _path(str(self.dir / "no-key-files"), "no key")))
        if auth.certificate:
            opts.append(("CertificateFile", _path(auth.certificate, f"{where}.auth.certificate")))
        # Like the pool: the key files, then every key of the agent when the agent is on.
        only = bool(auth.key_files) and agent is None
        opts.append(("IdentitiesOnly", "yes" if only else "no"))
        opts.append(
            ("IdentityAgent", _path(agent, f"{where}.auth.agent_path") if agent else "none")
        )
        if jumps:
            opts.append(("ProxyJump", ",".join(jumps)))
        known = [self.known_hosts_file, *(Path(p) for p in rh.known_hosts)]
        files = list(dict.fromkeys(os.path.abspath(p) for p in known))
        opts += [
            (
                "StrictHostKeyChecking",
                "accept-new" if rh.host_key_policy == "accept-new" else "yes",
            ),
            # The first file is where accept-new records keys: DifPipe's own, as the pool does.
            ("UserKnownHostsFile", " ".join(_path(f, f"{where}.known_hosts") for f in files)),
            ("GlobalKnownHostsFile", "/dev/null"),
            ("CheckHostIP", "no"),
            ("HashKnownHosts", "no"),
            ("UpdateHostKeys", "no"),
            ("Ciphers", ",".join(OPENSSH_CIPHERS)),
            ("Compression", "no"),
            ("ServerAliveInterval", str(_seconds(rh.keepalive_interval))),
            ("ServerAliveCountMax", str(max(1, int(rh.keepalive_count_max)))),
            ("ConnectTimeout", str(max(1, _seconds(rh.connect_timeout)))),
            ("ConnectionAttempts", "1"),
            ("BatchMode", "no" if password else "yes"),
            ("PubkeyAuthentication", "yes"),
            ("PasswordAuthentication", "yes" if password else "no"),
            ("KbdInteractiveAuthentication", "yes" if password else "no"),
            ("NumberOfPasswordPrompts", "1"),
            ("GSSAPIAuthentication", "no"),
            ("HostbasedAuthentication", "no"),
            ("LogLevel", "ERROR"),
        ]
        if control is not None:
            opts += [
                ("ControlMaster", "auto"),
                ("ControlPath", _path(str(control), "the control socket")),
                ("ControlPersist", str(CONTROL_PERSIST)),
            ]
        else:  # a hop lives inside its target's master; it needs no master of its own
            opts += [("ControlMaster", "no"), ("ControlPath", "none")]
        opts += [
            ("ForwardAgent", "no"),
            ("ForwardX11", "no"),
            ("RequestTTY", "no"),
            ("EscapeChar", "none"),
            ("PermitLocalCommand", "no"),
            ("AddKeysToAgent", "no"),
            ("ExitOnForwardFailure", "yes"),
        ]
        return [f"Host {alias}", *(f"  {k} {v}" for k, v in opts), ""]

    def _password_hops(self, name: str) -> list[ResolvedHost]:
        hops = [*self.config.jump_chain(name), self.config.resolve(name)]
        return [rh for rh in hops if rh.auth.password_env or rh.auth.password_command]

    # -- processes -----------------------------------------------------------------------------

    async def _env(self, name: str) -> dict[str, str]:
        """The environment of one ssh process for ``name``: passwords only where needed."""
        env = await self._env_plain()
        hops = self._password_hops(name)
        if not hops:
            env["SSH_ASKPASS_REQUIRE"] = "never"
            return env
        assert self.askpass is not None
        values = {}
        for rh in hops:
            password = await self._password_for(rh)
            if password is None:
                continue
            values[_pw_var(rh.user, rh.address)] = password
        env.update(values)
        if len(set(values.values())) == 1:
            env[_ONLY_PW] = next(iter(values.values()))  # answers any password prompt
        env["SSH_ASKPASS"] = str(self.askpass)
        env["SSH_ASKPASS_REQUIRE"] = "force"
        return env

    async def _password_for(self, rh: ResolvedHost) -> str | None:
        if self.pool is not None:
            return await self.pool.password_for(rh)
        if rh.name not in self._passwords:
            from ..ssh import SSHPool  # the pool's own rules and messages, without a pool

            value = await SSHPool(self.config).password_for(rh)
            if value is None:
                return None
            self._passwords[rh.name] = value
        return self._passwords[rh.name]

    def _argv(self, *args: str) -> list[str]:
        assert self.ssh is not None and self.config_file is not None
        return [self.ssh, "-F", str(self.config_file), *args]

    async def _run_ssh(
        self, args: list[str], *, env: dict[str, str] | None = None, timeout: float
    ) -> tuple[int | None, str]:
        """Run one short ssh command; its exit status (None: killed on timeout) and stderr."""
        assert self.dir is not None
        with tempfile.TemporaryFile(dir=self.dir) as err:
            proc = await asyncio.create_subprocess_exec(
                *self._argv(*args),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err.fileno(),
                env=env if env is not None else await self._env_plain(),
                start_new_session=True,
            )
            try:
                status: int | None = await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                _kill_group(proc)
                await proc.wait()
                status = None
            except BaseException:
                _kill_group(proc)
                # Reap it before going on: a closed context leaves no ssh behind, even briefly.
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(proc.wait()), CONTROL_TIMEOUT)
                raise
            return status, _read_all(err)

    async def _env_plain(self) -> dict[str, str]:
        """Our environment without askpass settings nor the configured password variables."""
        secret = {h.auth.password_env for h in self.config.hosts.values() if h.auth.password_env}
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SSH_ASKPASS", _ONLY_PW)) and k not in secret and k != "DISPLAY"
        }
        env["SSH_ASKPASS_REQUIRE"] = "never"
        return env

    def _master(self, name: str) -> _Master:
        alias = self.alias(name)
        assert self.dir is not None
        index = list(self.config.hosts).index(name)
        return self._masters.setdefault(name, _Master(alias, self.dir / f"m{index}"))

    async def _master_alive(self, master: _Master, *, fresh: bool = False) -> bool:
        """Whether the master answers ``ssh -O check``; with ``fresh``, a check of the last
        :data:`CHECK_FRESH` seconds does while the master's process is still there."""
        if not master.socket.exists():
            return False
        if (
            fresh
            and master.checked is not None
            and time.monotonic() - master.checked < CHECK_FRESH
            and _running(master.pid)
        ):
            return True
        status, err = await self._run_ssh(["-O", "check", master.alias], timeout=CONTROL_TIMEOUT)
        if status != 0:
            master.checked = None
            return False
        found = re.search(r"pid=(\d+)", err)
        if found:
            master.pid = int(found.group(1))
            master.checked = time.monotonic()
        return True

    def warm(self, names: Iterable[str]) -> None:
        """Start opening the masters of ``names`` now, in the background.

        A master takes a key exchange and a login (~0.2 s on a LAN, more through jump hosts);
        started while the plan is made, it is ready when the first leg needs it. A host that
        cannot use OpenSSH is skipped. A failure is kept for the first :meth:`connect` of that
        host, which raises it instead of trying again at once.
        """
        for name in names:
            if self.supports(name) and name not in self._warming:
                task = asyncio.create_task(self._open_master(name), name=f"ssh master {name}")
                task.add_done_callback(_retrieved)
                self._warming[name] = task

    async def connect(self, name: str) -> None:
        """Open (once) the master connection to ``name`` that the legs share.

        Raises what the pool would: :class:`HostKeyError`, :class:`AuthError`,
        :class:`NetworkError` (retryable), naming the jump host when one failed.
        """
        warming = self._warming.pop(name, None)
        if warming is not None:
            await warming  # its failure is this attempt's
        await self._open_master(name)

    async def _open_master(self, name: str) -> None:
        if self._closed:
            raise NetworkError("the OpenSSH context is closed", host=name)
        master = self._master(name)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if await self._master_alive(master, fresh=True):
                return
            with contextlib.suppress(FileNotFoundError):
                master.socket.unlink()  # a stale socket of a master that died
            hops = [*self.config.jump_chain(name), self.config.resolve(name)]
            timeout = sum(max(rh.connect_timeout * 3, 30.0) for rh in hops) + 5
            env = await self._env(name)
            args = ["-f", "-N", "-o", "ControlMaster=yes", master.alias]
            status, err = await self._run_ssh(args, env=env, timeout=timeout)
            if status == 0 and await self._master_alive(master):
                return
            if status is None:
                raise NetworkError(
                    f"no connection within {timeout:g}s",
                    host=name,
                    hint="is the host up and the address right?",
                )
            error = self.classify(name, err, status)
            if len(hops) > 1 and type(error) is NetworkError and "jump host" not in error.message:
                # With ControlPersist, ssh sends a jump host's messages to /dev/null: ask again
                # without a master to learn which hop failed and why.
                diag = ["-o", "ControlMaster=no", "-o", "ControlPath=none", master.alias, "true"]
                status2, err2 = await self._run_ssh(diag, env=env, timeout=timeout)
                if status2 not in (0, None):
                    error = self.classify(name, err2 or err, status2)
            raise error

    async def disconnect(self, name: str) -> None:
        """Stop the master of ``name`` (a leg found it dead); the next leg opens a new one."""
        master = self._masters.get(name)
        if master is None:
            return
        await self._stop_master(master)

    async def _stop_master(self, master: _Master) -> None:
        if master.socket.exists():
            with contextlib.suppress(OSError):
                await self._run_ssh(["-O", "exit", master.alias], timeout=CONTROL_TIMEOUT)
        if master.pid is not None:
            _terminate_master(master.pid, self.config_file)
            master.pid = None
        master.checked = None
        with contextlib.suppress(FileNotFoundError):
            master.socket.unlink()

    async def _start_leg(self, name: str, line: str, *, feed: bool, digest: bool) -> _Leg:
        """Start ``ssh -T ALIAS LINE``: we write its stdin (``feed``) or read its stdout."""
        assert self.dir is not None
        await self.connect(name)
        leg = _Leg(self, name)
        child_end, ours = _make_pipe(feed)
        leg.fd = ours
        leg.err = tempfile.TemporaryFile(dir=self.dir)  # noqa: SIM115 - closed by the leg
        if digest:
            leg.out = tempfile.TemporaryFile(dir=self.dir)  # noqa: SIM115 - closed by the leg
        stdout: int = (
            child_end if not feed else (leg.out.fileno() if leg.out else asyncio.subprocess.DEVNULL)
        )
        try:
            # ControlMaster=no: use the master, or else connect directly (never a new master).
            leg.proc = await asyncio.create_subprocess_exec(
                *self._argv("-T", "-o", "ControlMaster=no", self._aliases[name], line),
                stdin=child_end if feed else asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=leg.err.fileno(),
                env=await self._env(name),
                start_new_session=True,
            )
        except BaseException:
            leg.close_fds()
            raise
        finally:
            os.close(child_end)
        self._legs.add(leg)
        return leg

    def classify(self, name: str, stderr: str, status: int | None) -> DifpipeError:
        """Map what a failed ssh printed (exit status 255: ssh's own failure) to an error."""
        return _classify_ssh(self.config, name, stderr, status)

    # -- the end -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Kill the legs still running, stop the masters, remove the private directory."""
        if self._closed:
            return
        self._closed = True
        warming, self._warming = list(self._warming.values()), {}
        for task in warming:
            task.cancel()
        await asyncio.gather(*warming, return_exceptions=True)
        for leg in list(self._legs):
            await leg.abort()
        for master in list(self._masters.values()):
            await self._stop_master(master)
        self._finalizer()

    async def __aenter__(self) -> OpenSSHContext:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _running(pid: int | None) -> bool:
    """Whether a process ``pid`` exists and is not a zombie (Linux's /proc tells; psutil would
    add ~30 ms of imports to every copy)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc here: it exists


def _retrieved(task: asyncio.Task[None]) -> None:
    """Mark a background task's failure as seen: its owner reads it later, or never."""
    if not task.cancelled():
        task.exception()


def _private_dir() -> Path:
    """A 0700 directory with a short, shell-safe path (ProxyJump and sun_path need that).

    It records its owner (pid and start time) so that a later run can tell when the process
    that made it died without cleaning up (kill -9) and remove it with its masters.
    """
    base = tempfile.gettempdir()
    if not _SAFE_DIR.fullmatch(base) or len(base) > _MAX_DIR - 20:
        base = "/tmp"
    _sweep_stale(Path(base))
    directory = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=base))
    _write_private(directory / _OWNER, _owner_of(os.getpid()) or "", 0o600)
    return directory


def _owner_of(pid: int) -> str | None:
    """``PID START`` (start time in clock ticks since boot), or None when no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid} {stat.rsplit(')', 1)[1].split()[19]}"


def _sweep_stale(base: Path) -> None:
    """Stop the masters and remove the directories of this user's runs that died uncleanly."""
    try:
        entries = [e for e in os.scandir(base) if e.name.startswith(_DIR_PREFIX)]
    except OSError:
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
            if not entry.is_dir(follow_symlinks=False) or st.st_uid != os.getuid():
                continue
            owner = (Path(entry.path) / _OWNER).read_text().strip()
        except OSError:
            continue  # not ours, or a run still writing its directory
        pid = owner.split()[0] if owner else ""
        if not pid.isdigit() or _owner_of(int(pid)) == owner:
            continue  # its process still runs
        directory = Path(entry.path)
        for master in _processes_using(directory / "ssh_config"):
            _terminate_master(master, directory / "ssh_config")
        shutil.rmtree(directory, ignore_errors=True)


def _processes_using(config_file: Path) -> list[int]:
    """Pids of this user's processes whose argv names ``config_file``."""
    wanted = os.fsencode(str(config_file))
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in argv:
            found.append(int(entry.name))
    return found


def _write_private(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)


def _noexec(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_NOEXEC)
    except OSError:
        return False


def _askpass_script(hosts: Iterable[tuple[str, str]]) -> str:
    """An SSH_ASKPASS helper. It holds no secret: ssh's environment carries the password."""
    lines = [
        "#!/bin/sh",
        "# DifPipe's SSH_ASKPASS helper: prints the password ssh asks for from the",
        "# environment of the one ssh process that runs it. It holds no secret itself.",
        'case "$1" in',
        "  *[Pp]assphrase*|*yes/no*|*fingerprint*) exit 1 ;;",
    ]
    for user, address in sorted(set(hosts)):
        var = _pw_var(user, address)
        pattern = "*" + shlex.quote(f"{user}@{address}'s password") + "*"
        lines.append(
            f'  {pattern}) [ -n "${{{var}+x}}" ] || exit 1; printf \'%s\\n\' "${var}"; exit 0 ;;'
        )
    lines += [
        "esac",
        f'[ -n "${{{_ONLY_PW}+x}}" ] || exit 1',
        f"printf '%s\\n' \"${_ONLY_PW}\"",
        "",
    ]
    return "\n".join(lines)


def _cleanup(directory: Path, masters: dict[str, _Master]) -> None:
    """Last resort (garbage collection or interpreter exit): stop masters, remove the dir."""
    config_file = directory / "ssh_config"
    for master in list(masters.values()):
        if master.pid is not None:
            _terminate_master(master.pid, config_file)
    shutil.rmtree(directory, ignore_errors=True)


def _terminate_master(pid: int, config_file: Path | None) -> None:
    """SIGTERM a master we started, after checking that the pid is still that ssh."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if config_file is None or os.fsencode(str(config_file)) not in cmdline:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """Kill an ssh we started (in its own session) and any jump-host ssh it started."""
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


def _read_all(fh: IO[bytes]) -> str:
    fh.seek(0)
    return fh.read().decode(errors="replace")


def _make_pipe(feed: bool) -> tuple[int, int]:
    """(the child's end, our end) of a 1 MiB pipe; our end non-blocking and never inherited."""
    r, w = os.pipe()
    with contextlib.suppress(OSError):  # over /proc/sys/fs/pipe-max-size: keep the default
        fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
    child, ours = (r, w) if feed else (w, r)
    os.set_blocking(ours, False)
    return child, ours


# --------------------------------------------------------------------------- error messages


def _mentions(text: str, address: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(address)}(?![\w.])", text) is not None


def _classify_ssh(config: Config, name: str, stderr: str, status: int | None) -> DifpipeError:
    try:
        hops = [*config.jump_chain(name), config.resolve(name)]
    except DifpipeError as exc:
        return exc
    low = stderr.lower()
    # The host the message is about: the target unless a jump host is named (by address and
    # port first: on one machine every host may have the same address).
    rh = hops[-1]
    for hop in reversed(hops):
        if f"[{hop.address}]:{hop.port}" in stderr or f"{hop.address} port {hop.port}" in stderr:
            rh = hop
            break
    else:
        for hop in reversed(hops):
            if _mentions(stderr, hop.address):
                rh = hop
                break
    via = f"via jump host {rh.name}: " if rh.name != name else ""
    where = f"{rh.user}@{rh.address}:{rh.port}"
    lines = [
        ln.strip()
        for ln in stderr.splitlines()
        if ln.strip() and not ln.startswith(("@", FAIL_MARK, DIGEST_MARK, SENT_MARK))
    ]
    detail = lines[-1] if lines else f"ssh exited with status {status}"
    fingerprint = re.search(r"SHA256:[A-Za-z0-9+/=]+", stderr)
    shown = fingerprint.group(0) if fingerprint else "unknown"

    if "remote host identification has changed" in low or (
        "host key for" in low and "has changed" in low
    ):
        return HostKeyError(
            f"{via}HOST KEY MISMATCH for {where}: it presented {shown} which differs from the"
            " key in known_hosts; nothing was sent",
            host=name,
            hint="if the host was reinstalled, remove its old line from known_hosts;"
            " otherwise someone may be intercepting the connection",
        )
    if "host key verification failed" in low or re.search(r"no \S+ host key is known", low):
        return HostKeyError(
            f"{via}unknown host key for {where}; nothing was sent",
            host=name,
            hint="verify the fingerprint, then add it to known_hosts"
            ' or set host_key_policy = "accept-new"',
        )
    if "permission denied (" in low or "too many authentication failures" in low:
        tried = ", ".join(rh.auth.methods()) or "none configured"
        return AuthError(
            f"{via}authentication failed as {rh.user} (tried: {tried})",
            host=name,
            hint="check the key file, the agent (ssh-add -l) or the password source",
        )
    if "bad configuration option" in low or "bad configuration options" in low:
        return ConfigError(f"the generated ssh_config was refused: {detail}", host=name)
    if "administratively prohibited" in low:
        err = NetworkError(f"{via}cannot open a channel on {where}: {detail}", host=name)
        err.retryable = False
        err.hint = "the jump host must allow TCP forwarding (AllowTcpForwarding yes)"
        err.args = (err.render(),)
        return err
    if "unable to negotiate" in low:
        err = NetworkError(f"{via}{where}: {detail}", host=name)
        err.retryable = False
        err.args = (err.render(),)
        return err
    if "could not resolve hostname" in low:
        return NetworkError(
            f"{via}cannot resolve address of {where}", host=name, hint="check the address"
        )
    if "connection refused" in low:
        return NetworkError(
            f"{via}connection refused by {where}", hint="is sshd running?", host=name
        )
    if "timed out" in low or "not responding" in low:
        return NetworkError(
            f"{via}timed out connecting to {where}",
            host=name,
            hint="is the host up and the address right?",
        )
    return NetworkError(f"{via}ssh to {where} failed: {detail}", host=name)


# --------------------------------------------------------------------------- one leg


class _Aborted(Exception):
    pass


class _Shrunk(Exception):
    """The source's reader ended short of the stream's end: :attr:`_Leg.ended_at` says where."""


class _Leg:
    """One running ``ssh`` and our end of its pipe, read or written in worker threads."""

    def __init__(self, ctx: OpenSSHContext, host: str):
        self.ctx = ctx
        self.host = host
        self.proc: asyncio.subprocess.Process | None = None
        self.fd: int | None = None
        self.err: IO[bytes] | None = None
        self.out: IO[bytes] | None = None
        self.eof = False
        self.moved = 0  # bytes through our end of the pipe (read from it, or written into it)
        self.blocked = False  # a splice waits on this leg's pipe: for data, or for room
        #: A source's stream ends at this offset of the file, and its reader says where it
        #: ended (:meth:`~.ends.RemoteSource.read_line`): a wait for data looks for that.
        self.expect: int | None = None
        self.ended_at: int | None = None  # where the reader ended, short of :attr:`expect`
        self._err_seen = b""  # stderr looked at so far, while waiting for data
        self._aborted = False
        self._io = threading.Lock()  # held by the worker thread during each read/write
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    # -- worker-thread side --------------------------------------------------------------------

    def _wait(self, fd: int, event: int) -> None:
        poller = select.poll()
        poller.register(fd, event | select.POLLERR | select.POLLHUP)
        poller.register(self._wake_r, select.POLLIN)
        ready = self.poll_input(poller) if event == select.POLLIN else poller.poll()
        for which, _ in ready:
            if which == self._wake_r:
                raise _Aborted

    def poll_input(self, poller: select.poll) -> list[tuple[int, int]]:
        """``poller.poll()`` of a wait for the stream's data. With :attr:`expect`, the stderr
        ssh writes is looked at every :data:`LOOK` seconds meanwhile: a reader that ended
        short of it raises :class:`_Shrunk` (no byte will come, while the channel's end waits
        for the host's hash). Data that keeps coming never waits that long."""
        if self.expect is None:
            return poller.poll()
        while not (ready := poller.poll(int(LOOK * 1000))):
            self._look_for_end()
        return ready

    def _look_for_end(self) -> None:
        if self.err is None or self.expect is None:
            return
        seen = self._err_seen
        new = os.pread(self.err.fileno(), 65536, len(seen))  # ssh's offset stays where it is
        if not new:
            return
        self._err_seen = seen = seen + new
        whole = seen[: seen.rfind(b"\n") + 1].decode(errors="replace")
        end = reader_end(whole)
        if end is not None and end < self.expect:
            self.ended_at = end
            raise _Shrunk

    def read_exact(self, n: int) -> bytes:
        """Up to ``n`` bytes: fewer only at the end of the stream.

        ``os.read`` rather than ``readv`` into a fresh bytearray: no zero-filling, and no copy
        at all when one read fills the chunk (a full 1 MiB pipe).
        """
        parts: list[bytes] = []
        got = 0
        with self._io:
            if self._aborted:
                raise _Aborted
            fd = self.fd
            if fd is None or self.eof:
                return b""
            while got < n:
                if self._aborted:
                    raise _Aborted
                try:
                    part = os.read(fd, n - got)
                except BlockingIOError:
                    self._wait(fd, select.POLLIN)
                    continue
                if not part:
                    self.eof = True
                    break
                parts.append(part)
                got += len(part)
                self.moved += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def write_all(self, data: bytes) -> None:
        view = memoryview(data)
        with self._io:
            if self._aborted:
                raise _Aborted
            fd = self.fd
            if fd is None:
                raise BrokenPipeError(errno.EPIPE, "the stream is closed")
            while view:
                if self._aborted:
                    raise _Aborted
                try:
                    k = os.write(fd, view)
                except BlockingIOError:
                    self._wait(fd, select.POLLOUT)
                    continue
                view = view[k:]
                self.moved += k

    # -- event-loop side -----------------------------------------------------------------------

    def close_input(self) -> None:
        """Close our end of the pipe: the remote command sees the end of its input."""
        with self._io:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None

    async def wait(self, timeout: float) -> int | None:
        """The exit status of ssh, or None when it did not exit within ``timeout``."""
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            return None

    def stderr_text(self) -> str:
        return _read_all(self.err) if self.err is not None else ""

    def stdout_text(self) -> str:
        return _read_all(self.out) if self.out is not None else ""

    async def failure(self, what: str, status: int | None) -> DifpipeError:
        """The error of a leg that ended with ``status`` (None: did not end)."""
        text = self.stderr_text()
        if status is None:
            return NetworkError(f"{what}: the connection closed mid-stream", host=self.host)
        if FAIL_MARK in text or (status > 0 and status != 255):
            return _remote_error(self.host, what, text, status)
        if status < 0:
            return NetworkError(f"{what}: ssh was killed (signal {-status})", host=self.host)
        if status == 0:
            return NetworkError(f"{what}: the stream ended early", host=self.host)
        error = self.ctx.classify(self.host, text, status)
        if isinstance(error, NetworkError) and error.retryable:
            # The master may be dead while its socket still answers: start afresh next time.
            with contextlib.suppress(DifpipeError, OSError):
                await self.ctx.disconnect(self.host)
        return error

    async def abort(self) -> None:
        """Kill ssh (and its jump-host helpers), wake the worker thread, release everything."""
        self._aborted = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self.proc is not None:
            _kill_group(self.proc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), ABORT_TIMEOUT)
        got = await asyncio.to_thread(self._io.acquire, timeout=ABORT_TIMEOUT)
        try:
            self.close_fds(locked=True)
        finally:
            if got:
                self._io.release()
        self.ctx._legs.discard(self)

    def close_fds(self, *, locked: bool = False) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        for fh in (self.err, self.out):
            if fh is not None:
                with contextlib.suppress(OSError):
                    fh.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def done(self) -> None:
        self.close_fds()
        self.ctx._legs.discard(self)


# --------------------------------------------------------------------------- the ends


class OpenSSHSource(RemoteSource):
    """:class:`~.ends.RemoteSource` with its stream read from an OpenSSH ``ssh`` process.

    With ``digest=(ALGO, ARGV)`` the host also hashes the bytes it sends (see
    :class:`~.ends.RemoteSource`); :meth:`finish` then sets :attr:`digest`, or fails when the
    host printed none.
    """

    def __init__(
        self,
        ctx: OpenSSHContext,
        host: str,
        path: str,
        *,
        offset: int = 0,
        compress_argv: list[str] | None = None,
        digest: tuple[str, list[str]] | None = None,
        length: int | None = None,
    ):
        pool: SSHPool = ctx.pool  # type: ignore[assignment]  # unused: the stream is ssh's
        super().__init__(
            pool,
            host,
            path,
            offset=offset,
            compress_argv=compress_argv,
            digest_argv=digest[1] if digest else None,
            length=length,
        )
        self.digest_algo = digest[0] if digest else None
        self.ctx = ctx
        self._leg: _Leg | None = None

    async def open(self) -> None:
        self._opened = time.monotonic()
        self._leg = await self.ctx._start_leg(
            self.host, self.command_line(), feed=False, digest=False
        )
        if self.digest_argv is not None and self.length is not None:
            self._leg.expect = self.offset + self.length

    def received(self) -> int | None:
        """What came out of ssh's pipe, counted as each piece of a read arrives."""
        return self._leg.moved if self._leg is not None else None

    async def read(self, n: int) -> bytes:
        n = self.wanted(n)
        return await self._read_pipe(n) if n else b""

    async def _read_pipe(self, n: int) -> bytes:
        assert self._leg is not None
        try:  # whole chunks, like RemoteSource: fewer, larger writes downstream
            return await asyncio.to_thread(self._leg.read_exact, n)
        except _Shrunk:
            assert self._leg.ended_at is not None
            raise self.shrunk(self._leg.ended_at) from None
        except _Aborted:
            raise NetworkError(f"{self.path}: the stream was aborted", host=self.host) from None
        except OSError as exc:
            raise NetworkError(
                f"{self.path}: cannot read the stream: {exc}", host=self.host
            ) from exc

    async def _rest(self) -> tuple[int, int]:
        """Read the pipe to its end, then wait for ssh: (bytes that followed the stream's
        :attr:`length`, ssh's exit status)."""
        assert self._leg is not None and self._leg.proc is not None
        extra = 0
        while part := await self._read_pipe(PIPE_SIZE):
            extra += len(part)
        return extra, await self._leg.proc.wait()

    async def finish(self) -> None:
        leg = self._leg
        assert leg is not None
        try:
            try:
                extra, status = await asyncio.wait_for(self._rest(), self.finish_timeout())
            except TimeoutError:
                await leg.abort()
                raise NetworkError("the source did not finish", host=self.host) from None
            if status != 0 or FAIL_MARK in leg.stderr_text():
                raise await leg.failure(self.path, status)
            self._check_rest(extra)
            if self.digest_algo is not None:
                self.digest = source_digest_output(leg.stderr_text(), self.digest_algo)
                if self.digest is None:
                    raise RemoteCommandError(
                        f"{self.path}: the source host printed no digest of what it sent",
                        host=self.host,
                    )
        finally:
            leg.done()

    async def abort(self) -> None:
        if self._leg is not None:
            await self._leg.abort()


class OpenSSHSink(RemoteSink):
    """:class:`~.ends.RemoteSink` with its stream written into an OpenSSH ``ssh`` process.

    Only the stream changes: prepare, land, the digests and discard run over the pool.
    """

    def __init__(
        self,
        ctx: OpenSSHContext,
        host: str,
        target: str,
        *,
        algo: str,
        tools: set[str],
        decompress_argv: list[str] | None = None,
        pool: SSHPool | None = None,
    ):
        pool = pool or ctx.pool
        if pool is None:
            raise ValueError("OpenSSHSink needs the SSH pool for its small commands")
        super().__init__(
            pool, host, target, algo=algo, tools=tools, decompress_argv=decompress_argv
        )
        self.ctx = ctx
        self._leg: _Leg | None = None

    async def open(self) -> None:
        self._leg = await self.ctx._start_leg(
            self.host, self.command_line(), feed=True, digest=self.digest_argv is not None
        )

    def taken(self) -> int | None:
        """What went into ssh's pipe (1 MiB): ssh stops reading it when the link stalls."""
        return self._leg.moved if self._leg is not None else None

    async def write(self, data: bytes) -> None:
        leg = self._leg
        assert leg is not None
        try:
            await asyncio.to_thread(leg.write_all, data)
        except _Aborted:
            raise NetworkError(f"{self.target}: the stream was aborted", host=self.host) from None
        except OSError as exc:  # EPIPE: the remote side ended early; its stderr says why
            status = await leg.wait(ABORT_TIMEOUT)
            error = await leg.failure(self.target, status)
            if status == 0 and FAIL_MARK not in leg.stderr_text():
                error = NetworkError(
                    f"{self.target}: the destination stopped reading early", host=self.host
                )
            raise error from exc

    async def finish(self) -> str | None:
        leg = self._leg
        assert leg is not None
        try:
            leg.close_input()
            status = await leg.wait(SINK_FINISH_TIMEOUT)
            if status is None:
                await leg.abort()
                raise NetworkError(f"{self.target}: the destination did not finish", host=self.host)
            if status != 0 or FAIL_MARK in leg.stderr_text():
                raise await leg.failure(self.target, status)
            if self.digest_argv:
                return parse_digest_output(leg.stdout_text(), self.algo)
            return None
        finally:
            leg.done()

    async def abort(self) -> None:
        if self._leg is not None:
            await self._leg.abort()
