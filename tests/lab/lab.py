"""The lab: real sshd hosts, their keys, their network and the faults tests inject into it."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import getpass
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from . import net
from .agent import SshAgent
from .keys import generate_ed25519, known_hosts_line, public_line
from .proxy import DelayProxy
from .sshd import Sshd, SshdConfig, ensure_privsep_dir
from .system import (
    LabError,
    free_port,
    is_root,
    is_stale,
    kill_all,
    new_prefix,
    pids_referencing,
    plain_user_name,
    require_tools,
    user_name,
)
from .users import KeyUser, PasswordUser, remove_stale_users

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostSpec:
    name: str
    role: str
    octet: int
    """Last byte of the host's address on its subnet."""
    via: str | None = None
    """The host that is the only way in (its private link), or None for the shared bridge."""


HOST_SPECS = (
    HostSpec("edge", "edge", 10),
    HostSpec("cloud", "cloud", 11),
    HostSpec("storage", "storage", 12),
    HostSpec("bastion", "bastion", 13),
    HostSpec("inner", "other", 20, via="bastion"),
)
HOST_NAMES = tuple(spec.name for spec in HOST_SPECS)
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT = 15.0
STANDARD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
MARKER = ".difpipe-lab"
"""Marks a lab's directory, so that only those are ever removed as leftovers."""


@dataclass
class LabHost:
    """One sshd host of the lab."""

    name: str
    role: str
    address: str
    """The address to connect to (for a host behind a jump host: as seen from the jump host)."""
    port: int
    host_key_path: Path
    host_key_pub: str
    """The host's public key line, ``ssh-ed25519 AAAA... comment``."""
    log_path: Path
    """sshd's own log (``-E``), at LogLevel VERBOSE."""
    sshd_config: Path
    namespace: str | None
    """The host's network namespace, None on the loopback fallback."""
    root: Path
    """A directory that belongs to this host, for tests to put and find data in."""
    jump: str | None = None
    """The name of the host to jump through, or None when directly reachable."""
    pid: int | None = None
    """The pid of the listening sshd."""
    home: Path | None = None
    """Every session's HOME: an empty directory of this host (None: each user's own)."""


def _flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    return None


class Lab:
    """Real OpenSSH hosts for integration tests; build with :meth:`start`, end with :meth:`close`.

    Environment knobs: ``DIFPIPE_LAB_NETNS=0`` forces the loopback fallback, ``=1`` makes a
    failure to build namespaces an error; ``DIFPIPE_LAB_KEEP=1`` keeps the lab's directory
    (keys, configs, sshd logs) after teardown for inspection.
    """

    def __init__(
        self, prefix: str, workdir: Path, specs: Sequence[HostSpec], *, user_home: bool = False
    ) -> None:
        self.prefix = prefix
        self.workdir = workdir
        self.specs = list(specs)
        self.hosts: dict[str, LabHost] = {}
        self.netns = False
        self.fallback_reason: str | None = None
        self.user = getpass.getuser()
        self.client_key = workdir / "client" / "id_ed25519"
        self.client_pub = ""
        self.known_hosts = workdir / "known_hosts"
        self.ssh_config = workdir / "ssh_config"
        self.authorized_keys = workdir / "authorized_keys"
        self.password_user: str | None = None
        self.password: str | None = None
        self.plain_user: str | None = None
        """A user with ``/bin/sh`` as login shell who logs in with the lab key (``plain_user=``)."""
        self.keep = bool(_flag("DIFPIPE_LAB_KEEP"))
        self.user_home = user_home
        """Sessions keep the user's own home (see :meth:`start`)."""
        self.startup_seconds = 0.0
        self._topology: net.Topology | None = None
        self._sshd: dict[str, Sshd] = {}
        self._pw_user: PasswordUser | None = None
        self._plain_user: KeyUser | None = None
        self._proxies: dict[str, list[DelayProxy]] = {}
        self._agents: list[SshAgent] = []
        self._touched: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False

    # Building ----------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        hosts: Iterable[str] = HOST_NAMES,
        *,
        netns: bool | None = None,
        password_user: bool = True,
        plain_user: bool = False,
        user_home: bool = False,
    ) -> Lab:
        """Build a lab with the named hosts (default: all five) and wait until sshd listens.

        ``netns`` None picks namespaces when they can be made and falls back to loopback
        otherwise; True insists on them; False uses loopback. ``plain_user`` (root only) adds
        :attr:`plain_user`, whose remote commands start without a shell profile.

        Every session's HOME is an empty directory of its host, so that a remote command
        starts without the shell startup files of the user running the lab (bash sources
        ``~/.bashrc`` for a command run over ssh); ``user_home`` keeps each user's own home.
        """
        started = time.monotonic()
        require_tools()
        wanted = set(hosts)
        if not wanted:
            raise ValueError("a lab needs at least one host")
        unknown = wanted - set(HOST_NAMES)
        if unknown:
            raise ValueError(f"unknown lab hosts: {', '.join(sorted(unknown))}")
        specs = [spec for spec in HOST_SPECS if spec.name in wanted]
        for spec in specs:
            if spec.via and spec.via not in wanted:
                raise ValueError(f"{spec.name} is reachable only through {spec.via}: add it")
        remove_stale()
        prefix = new_prefix()
        workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
        # Others may need to reach in: the password user's home and the hosts' data.
        workdir.chmod(0o755)
        (workdir / MARKER).write_text("a DifPipe test lab; removed at teardown\n")
        lab = cls(prefix, workdir, specs, user_home=user_home)
        atexit.register(lab.close)
        try:
            lab._build(
                netns if netns is not None else _flag("DIFPIPE_LAB_NETNS"),
                password_user,
                plain_user,
            )
        except BaseException:
            lab.close()
            raise
        lab.startup_seconds = time.monotonic() - started
        return lab

    def _build(self, netns: bool | None, password_user: bool, plain_user: bool = False) -> None:
        host_keys = {
            spec.name: self.workdir / spec.name / "ssh_host_ed25519_key" for spec in self.specs
        }
        with ThreadPoolExecutor(max_workers=3) as pool:
            all_keys = [self.client_key, *host_keys.values()]
            keys = pool.submit(generate_ed25519, all_keys, f"difpipe-lab-{self.prefix}")
            user = pool.submit(self._create_password_user) if password_user and is_root() else None
            plain = pool.submit(self._create_plain_user) if plain_user and is_root() else None
            self._build_network(netns)
            keys.result()
            for made in (user, plain):
                if made is not None:
                    made.result()

        self.client_pub = public_line(self.client_key)
        self.authorized_keys.mkdir()
        for name in (self.user, self.plain_user):
            if name is not None:
                (self.authorized_keys / name).write_text(self.client_pub + "\n")
        ensure_privsep_dir()

        for spec in self.specs:
            self._add_host(spec, host_keys[spec.name])
        self._write_known_hosts()
        self._start_sshds()
        self._write_ssh_config()

    def _create_password_user(self) -> None:
        self._pw_user = PasswordUser(user_name(self.prefix), self.workdir / "home")
        self._pw_user.create()
        self.password_user = self._pw_user.name
        self.password = self._pw_user.password

    def _create_plain_user(self) -> None:
        self._plain_user = KeyUser(plain_user_name(self.prefix), self.workdir / "plain-home")
        self._plain_user.create()
        self.plain_user = self._plain_user.name

    def plain_ids(self) -> tuple[int, int]:
        """(uid, gid) of :attr:`plain_user`, to give it directories to write in."""
        if self._plain_user is None:
            raise LabError("the lab was started without plain_user=True")
        return self._plain_user.uid, self._plain_user.gid

    def _build_network(self, netns: bool | None) -> None:
        if netns is False:
            self.fallback_reason = "DIFPIPE_LAB_NETNS=0 or netns=False asked for loopback"
            return
        reason = net.netns_unsupported()
        if reason is None:
            attachments = [net.Attachment(s.name, s.octet, s.via) for s in self.specs]
            topology = net.Topology(self.prefix, attachments)
            self._topology = topology
            try:
                topology.create()
            except LabError as exc:
                topology.destroy()
                self._topology = None
                reason = f"building the namespaces failed: {exc}"
        if reason is None:
            self.netns = True
            return
        if netns:
            raise LabError(f"network namespaces were required but {reason}")
        self.fallback_reason = reason
        log.warning("sshd lab falls back to 127.0.0.1: %s", reason)

    def _add_host(self, spec: HostSpec, host_key: Path) -> None:
        directory = self.workdir / spec.name
        root = directory / "data"
        root.mkdir(parents=True)
        if self._topology is not None:
            address = self._topology.links[spec.name].address
            namespace: str | None = self._topology.namespace(spec.name)
            listen, port = "0.0.0.0", 22
        else:
            address, namespace, listen, port = LOOPBACK, None, LOOPBACK, free_port()
        home = None
        if not self.user_home:  # an empty home: no shell startup file of the user's runs
            home = directory / "home"
            home.mkdir(mode=0o755)
        config = SshdConfig(
            listen_address=listen,
            port=port,
            host_key=host_key,
            pid_file=directory / "sshd.pid",
            authorized_keys=self.authorized_keys,
            home=home,
        )
        sshd = Sshd(spec.name, config, directory / "sshd_config", directory / "sshd.log", namespace)
        self._sshd[spec.name] = sshd
        self.hosts[spec.name] = LabHost(
            name=spec.name,
            role=spec.role,
            address=address,
            port=port,
            host_key_path=host_key,
            host_key_pub=public_line(host_key),
            log_path=sshd.log_path,
            sshd_config=sshd.config_path,
            namespace=namespace,
            root=root,
            jump=spec.via,
            home=home,
        )

    def _write_known_hosts(self) -> None:
        """Every host under its address, and under each open delay proxy that leads to it."""
        lines = [known_hosts_line(h.address, h.port, h.host_key_pub) for h in self.hosts.values()]
        for name, proxies in self._proxies.items():
            key = self.hosts[name].host_key_pub
            lines += [known_hosts_line(*proxy.address, key) for proxy in proxies]
        tmp = self.known_hosts.with_name(self.known_hosts.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.known_hosts)

    def _write_ssh_config(self) -> None:
        """A client config naming every host, for ``ssh -F FILE edge`` and for ``-J`` hops.

        ``ssh -J`` runs the hop's ssh with the same ``-F`` file but without the ``-o``
        options of the command line, so the hop finds its key and known_hosts here.
        """
        lines = ["# OpenSSH client settings for the DifPipe test lab: ssh -F THIS_FILE edge"]
        for host in self.hosts.values():
            lines += [f"Host {host.name}", f"  HostName {host.address}", f"  Port {host.port}"]
            if host.jump:
                lines.append(f"  ProxyJump {host.jump}")
        lines += [
            "Host *",
            f"  User {self.user}",
            f'  IdentityFile "{self.client_key}"',
            "  IdentitiesOnly yes",
            f'  UserKnownHostsFile "{self.known_hosts}"',
            "  GlobalKnownHostsFile none",
            "  StrictHostKeyChecking yes",
            "  BatchMode yes",
            "  ConnectTimeout 5",
        ]
        self.ssh_config.write_text("\n".join(lines) + "\n")

    def _start_sshds(self) -> None:
        for sshd in self._sshd.values():
            sshd.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        for name, sshd in self._sshd.items():
            try:
                sshd.wait_ready(deadline)
            except LabError:
                if self.netns or "Address already in use" not in sshd.log_path.read_text():
                    raise
                self._restart_on_new_port(name, deadline)
            self.hosts[name].pid = sshd.pid

    def _restart_on_new_port(self, name: str, deadline: float) -> None:
        """Loopback ports are picked before sshd binds them; on a lost race, pick again."""
        sshd = self._sshd[name]
        sshd.stop()
        port = free_port()
        sshd.config = dataclasses.replace(sshd.config, port=port)
        self.hosts[name].port = port
        self._write_known_hosts()
        sshd.start()
        sshd.wait_ready(deadline)

    @contextlib.contextmanager
    def max_sessions(self, name: str, value: int | None) -> Iterator[LabHost]:
        """Run the host's sshd with ``MaxSessions value`` (None: sshd's default, 10 channels
        per connection; 0: no sessions at all, forwarding only).

        The lab raises the cap for tests that open many channels at once; this restarts the
        host's sshd with ``value``, and as before afterwards. Open connections to it end.
        """
        original = self._sshd[name].config
        self._restart(name, dataclasses.replace(original, max_sessions=value))
        try:
            yield self.hosts[name]
        finally:
            self._restart(name, original)

    @contextlib.contextmanager
    def without_tools(self, name: str, tools: Iterable[str]) -> Iterator[LabHost]:
        """Run the host's sshd with a PATH on which ``tools`` (e.g. ``zstd``) cannot be found.

        The PATH is one directory of symlinks to every command of the standard directories
        but those: the binaries themselves stay where they are, other hosts still have them.
        Open connections to the host end, as with :meth:`max_sessions`. A login profile that
        puts pyenv's shims first (root's, here, with ``user_home``) would still run a Python:
        hiding ``python3`` also tells pyenv to use the system's, which its shim then cannot find.
        """
        hidden = set(tools)
        farm = Path(tempfile.mkdtemp(prefix=f"path-{name}-", dir=self.workdir))
        farm.chmod(0o755)
        for directory in STANDARD_PATH:
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(directory):
                    link = farm / entry.name
                    if entry.name not in hidden and not link.exists():
                        link.symlink_to(entry.path)
        original = self._sshd[name].config
        env = (("PYENV_VERSION", "system"),) if "python3" in hidden else ()
        self._restart(name, dataclasses.replace(original, path=str(farm), env=env))
        try:
            yield self.hosts[name]
        finally:
            self._restart(name, original)
            shutil.rmtree(farm, ignore_errors=True)

    def _restart(self, name: str, config: SshdConfig) -> None:
        sshd = self._sshd[name]
        sshd.stop()
        sshd.config = config
        sshd.start()
        sshd.wait_ready(time.monotonic() + STARTUP_TIMEOUT)
        self.hosts[name].pid = sshd.pid

    # Queries -----------------------------------------------------------------------------

    def __getitem__(self, name: str) -> LabHost:
        return self.hosts[name]

    @property
    def edge(self) -> LabHost:
        return self.hosts["edge"]

    @property
    def cloud(self) -> LabHost:
        return self.hosts["cloud"]

    @property
    def storage(self) -> LabHost:
        return self.hosts["storage"]

    @property
    def bastion(self) -> LabHost:
        return self.hosts["bastion"]

    @property
    def inner(self) -> LabHost:
        return self.hosts["inner"]

    @property
    def isolated(self) -> bool:
        """True when hosts behind a jump host really cannot be reached directly."""
        return self.netns

    @property
    def gateway(self) -> str | None:
        """The test process's own address on the lab bridge (None on loopback)."""
        return self._topology.gateway if self._topology else None

    @property
    def subnet(self) -> str | None:
        """The bridge subnet, e.g. ``10.77.0.0/24`` (None on loopback)."""
        return str(self._topology.subnet) if self._topology else None

    @property
    def private_subnet(self) -> str | None:
        """The subnet behind the bastion, e.g. ``10.78.0.0/24`` (None on loopback)."""
        return str(self._topology.private_subnet) if self._topology else None

    def ssh_argv(self, name: str, *command: str, user: str | None = None) -> list[str]:
        """An OpenSSH ``ssh`` command line for a host, strict about host keys, no prompts.

        Hosts behind a jump host get ``-J``; the hop reads its settings from :attr:`ssh_config`.
        """
        host = self.hosts[name]
        argv = ["ssh", "-F", str(self.ssh_config), "-i", str(self.client_key)]
        argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        argv += ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]
        argv += ["-l", user or self.user, "-p", str(host.port)]
        if host.jump:
            argv += ["-J", host.jump]
        return [*argv, host.address, *command]

    @contextlib.contextmanager
    def scratch_dirs(self, prefix: str, names: Iterable[str]) -> Iterator[dict[str, Path]]:
        """A fresh directory ``PREFIX-TAG`` under each named host's root, removed afterwards."""
        tag = os.urandom(4).hex()
        made = {}
        for name in names:
            d = Path(self.hosts[name].root) / f"{prefix}-{tag}"
            d.mkdir(parents=True)
            made[name] = d
        try:
            yield made
        finally:
            for d in made.values():
                shutil.rmtree(d, ignore_errors=True)

    def write_config(
        self,
        path: str | os.PathLike[str],
        hosts: Iterable[str] | None = None,
        *,
        host_auth: dict[str, Any] | None = None,
        **defaults: Any,
    ) -> Path:
        """Write a DifPipe TOML config for the lab hosts and return its path.

        ``hosts`` limits the hosts written (jump hosts they need are added). ``host_auth``
        replaces every host's ``auth`` table (default: the lab key, no agent). Other keyword
        arguments override ``[defaults]`` entries, and None removes one.
        """
        names = list(hosts) if hosts is not None else list(self.hosts)
        for name in list(names):
            jump = self.hosts[name].jump
            if jump and jump not in names:
                names.append(jump)
        table: dict[str, Any] = {
            "user": self.user,
            "known_hosts": [str(self.known_hosts)],
            "host_key_policy": "strict",
            "connect_timeout": 5.0,
        }
        for key, value in defaults.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        entries: dict[str, Any] = {}
        for name in sorted(names, key=list(self.hosts).index):
            host = self.hosts[name]
            entry: dict[str, Any] = {"address": host.address, "port": host.port, "role": host.role}
            if host.jump:
                entry["jump"] = [host.jump]
            entry["auth"] = dict(host_auth or {"key_files": [str(self.client_key)], "agent": False})
            entries[name] = entry
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump_toml({"defaults": table, "hosts": entries}))
        return path

    # Faults ------------------------------------------------------------------------------

    def _faults(self, name: str) -> net.Topology:
        if name not in self.hosts:
            raise KeyError(name)
        if self._topology is None:
            pytest.skip(f"network faults need network namespaces ({self.fallback_reason})")
        self._touched.add(name)
        return self._topology

    def cut(self, name: str) -> None:
        """Take the host's link down (a partition) until :meth:`heal`."""
        self._faults(name).cut(name)

    def drop(self, name: str, percent: int) -> None:
        """Drop ``percent`` % of the host's packets in each direction until :meth:`heal`."""
        if not 0 <= percent <= 100:
            raise ValueError("percent must be between 0 and 100")
        self._faults(name).drop(name, int(percent))

    def cap(
        self, name: str, rate: str = "100mbit", *, burst: str = "256kb", latency: str = "200ms"
    ) -> None:
        """Limit the host's link to ``rate`` (tc units, e.g. ``8mbit``) both ways until heal."""
        self._faults(name).cap(name, rate, burst, latency)

    def link_bytes(self, name: str) -> tuple[int, int]:
        """(received, sent) bytes on the host's link so far, counted by the kernel."""
        if name not in self.hosts:
            raise KeyError(name)
        if self._topology is None:
            pytest.skip(f"link counters need network namespaces ({self.fallback_reason})")
        return self._topology.link_bytes(name)

    def nft_ruleset(self, name: str) -> str:
        """The nftables ruleset inside the host's namespace (shows :meth:`drop`'s rules)."""
        return self._faults(name).nft_ruleset(name)

    def delay_proxy(self, name: str, delay_ms: float) -> tuple[str, int]:
        """Start a proxy on 127.0.0.1 that delays the host's traffic ``delay_ms`` each way.

        Returns the proxy's (host, port), which :attr:`known_hosts` lists with the host's key
        while the proxy is open; the proxy closes on :meth:`heal` and at teardown. Hosts
        behind a jump host have no direct address to proxy to.
        """
        host = self.hosts[name]
        if host.jump and self.isolated:
            raise ValueError(f"{name} is reachable only through {host.jump}: proxy that host")
        proxy = DelayProxy((host.address, host.port), delay_ms / 1000)
        with self._lock:
            self._proxies.setdefault(name, []).append(proxy)
            self._touched.add(name)
            self._write_known_hosts()
        return proxy.address

    def heal(self, name: str) -> None:
        """Undo every fault on the host: link up, no drops, no caps, proxies closed."""
        with self._lock:
            proxies = self._proxies.pop(name, [])
            self._touched.discard(name)
            if proxies:
                self._write_known_hosts()
        for proxy in proxies:
            proxy.close()
        if self._topology is not None and name in self._topology.links:
            self._topology.heal(name)

    def heal_all(self) -> None:
        """Heal every host a fault helper touched since the last heal."""
        errors = []
        for name in sorted(self._touched | set(self._proxies)):
            try:
                self.heal(name)
            except LabError as exc:
                errors.append(str(exc))
        if errors:
            raise LabError("; ".join(errors))

    @property
    def touched(self) -> frozenset[str]:
        return frozenset(self._touched | set(self._proxies))

    # Agents ------------------------------------------------------------------------------

    def start_agent(self) -> SshAgent:
        """A running ssh-agent that holds the lab client key; stopped at teardown at the latest."""
        agent = SshAgent(self.workdir / f"agent-{len(self._agents)}.sock").start()
        self._agents.append(agent)
        try:
            agent.add(self.client_key)
        except LabError:
            agent.close()
            raise
        return agent

    # Teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop everything and remove what the lab made. Idempotent; safe after a failed start."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        errors: list[str] = []

        def attempt(action: Any, *args: Any) -> None:
            try:
                action(*args)
            except Exception as exc:  # teardown goes on whatever fails
                errors.append(f"{getattr(action, '__qualname__', action)}: {exc}")

        for proxies in self._proxies.values():
            for proxy in proxies:
                attempt(proxy.close)
        self._proxies.clear()
        for agent in self._agents:
            attempt(agent.close)
        for sshd in self._sshd.values():
            attempt(sshd.stop)
        if self._topology is not None:
            attempt(self._topology.destroy)
        for made in (self._pw_user, self._plain_user):
            if made is not None:
                attempt(made.remove)
        if not self.keep:
            attempt(shutil.rmtree, self.workdir)
        if errors:
            raise LabError("lab teardown was incomplete: " + "; ".join(errors))

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_ARRAY_ITEMS = re.compile(r"= \[\n((?:    [^\n]*,\n)+)\]$", re.MULTILINE)


def _dump_toml(document: dict[str, Any]) -> str:
    """TOML as people write it: tomli_w's output with flat arrays on one line."""
    text = tomli_w.dumps(document)

    def one_line(match: re.Match[str]) -> str:
        items = [line.strip().removesuffix(",") for line in match[1].splitlines()]
        return "= [" + ", ".join(items) + "]"

    compact = _ARRAY_ITEMS.sub(one_line, text)
    return compact if tomllib.loads(compact) == document else text


def remove_stale() -> list[str]:
    """Remove what crashed lab runs left behind (only names of the lab's own scheme)."""
    removed = []
    for entry in Path(tempfile.gettempdir()).iterdir():
        if (
            is_stale(entry.name, "workdir")
            and entry.is_dir()
            and not entry.is_symlink()
            and (entry / MARKER).is_file()
        ):
            kill_all(pids_referencing(str(entry)))
            with contextlib.suppress(OSError):
                shutil.rmtree(entry)
            removed.append(str(entry))
    if is_root():
        removed += net.Topology.remove_stale()
        removed += remove_stale_users()
    if removed:
        log.info("removed leftovers of earlier lab runs: %s", ", ".join(removed))
    return removed
