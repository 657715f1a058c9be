"""The embedded lab behind ``difpipe demo``: three SSH hosts on 127.0.0.1, no root, no sshd.

:meth:`DemoLab.start` makes a private directory with

- ``home/``: a ``DIFPIPE_HOME`` (config, state database, known_hosts) and the client key,
- ``hosts/NAME/``: the root of each host, holding its sample data,

generates a client key and one host key per host, starts the servers on their own asyncio loop
in a thread (so they serve whichever loop the engine runs on: the console's worker thread or
the CLI's main loop) and writes a config that names the hosts with their roles. Host keys are
checked strictly against the lab's own known_hosts; the config holds paths, never a secret.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from ..core import config as cfg
from ..core.errors import LocalIOError
from ..core.ssh import known_hosts_entry
from . import data
from .server import HostServer

__all__ = ["DEMO_USER", "HOSTS", "DemoHost", "DemoLab"]

DEMO_USER = "demo"
_START_TIMEOUT = 30.0


@dataclass(frozen=True)
class _Spec:
    name: str
    role: str
    description: str


HOSTS = (
    _Spec("edge-pi", "edge", "Raspberry Pi at the edge: camera recordings, app log, readings"),
    _Spec("cloud-vm", "cloud", "Cloud VM that takes over the edge's apps"),
    _Spec("backup", "storage", "Backup box: copies land in incoming/"),
)


@dataclass(frozen=True)
class DemoHost:
    """One running demo host: its name in the config, role, root directory and port."""

    name: str
    role: str
    root: Path
    address: str
    port: int


class DemoLab:
    """Three in-process SSH hosts with sample data and a config for them.

    Use :meth:`start` (or ``with DemoLab.start() as lab:``); :meth:`close` stops the servers,
    kills what they still run and removes the lab directory unless ``keep`` was asked for.
    """

    def __init__(self, base: Path, *, keep: bool = False):
        self.base = base
        self.keep = keep
        self.home = base / "home"
        self.config_path = self.home / "difpipe.toml"
        self.known_hosts_path = self.home / "state" / "known_hosts"
        self.client_key_path = self.home / "id_ed25519"
        self._roots = {spec.name: base / "hosts" / spec.name for spec in HOSTS}
        self.hosts: dict[str, DemoHost] = {}
        self._servers: list[HostServer] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- life cycle --------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        big_size: int = data.DEFAULT_BIG_SIZE,
        log_size: int = data.DEFAULT_LOG_SIZE,
        small_files: int = data.DEFAULT_SMALL_FILES,
        keep: bool = False,
    ) -> DemoLab:
        """Make the lab in a new directory under ``base_dir`` (default: the temp dir) and start it.

        ``big_size`` and ``log_size`` are in bytes; ``small_files`` is how many small files the
        edge's ``data/readings`` directory holds.
        """
        parent = Path(base_dir) if base_dir is not None else Path(tempfile.gettempdir())
        try:
            base = Path(tempfile.mkdtemp(prefix="difpipe-demo-", dir=parent))
        except OSError as exc:
            raise LocalIOError(
                f"cannot make the demo directory in {parent}: {exc.strerror}"
            ) from exc
        lab = cls(base, keep=keep)
        try:
            lab._make_files(big_size=big_size, log_size=log_size, small_files=small_files)
            lab._start_servers()
            lab._write_config()
        except BaseException:
            lab.close()
            raise
        return lab

    def close(self) -> None:
        """Stop the servers and their commands; remove the lab directory unless kept."""
        if self._closed:
            return
        self._closed = True
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            try:
                self._call(self._stop_servers())
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(_START_TIMEOUT)
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> DemoLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what a caller shows ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return not self._closed and self._thread is not None and self._thread.is_alive()

    def path_on(self, host: str, path: str) -> Path:
        """Where ``host:path`` (a path relative to the host's root) is on this machine."""
        return self.hosts[host].root / path

    def examples(self) -> list[str]:
        """Commands to try against the lab, with DIFPIPE_HOME pointed at its home."""
        return [
            "difpipe hosts check",
            "difpipe copy edge-pi:data/big.bin cloud-vm:incoming/ backup:incoming/",
            "difpipe copy edge-pi:data/app.log backup:incoming/ --compress auto",
            "difpipe copy -r edge-pi:data/readings cloud-vm:incoming/",
            "difpipe analyze edge-pi:data/big.bin cloud-vm:incoming/",
        ]

    # -- internals ---------------------------------------------------------------------------

    def _make_files(self, *, big_size: int, log_size: int, small_files: int) -> None:
        try:
            (self.home / "state").mkdir(parents=True, mode=0o700)
            roots = self._roots
            for root in roots.values():
                root.mkdir(parents=True)
            edge = roots["edge-pi"] / "data"
            edge.mkdir()
            data.write_random(edge / "big.bin", big_size)
            data.write_log(edge / "app.log", log_size)
            data.write_small_files(edge / "readings", small_files)
            cloud = roots["cloud-vm"]
            (cloud / "incoming").mkdir()
            (cloud / "srv" / "app").mkdir(parents=True)
            (cloud / "srv" / "app" / "app.toml").write_text(
                '[app]\nname = "shop-floor-dashboard"\nport = 8080\n'
            )
            backup = roots["backup"]
            (backup / "incoming").mkdir()
            (backup / "archive").mkdir()
            (backup / "archive" / "README").write_text("Nightly copies of the edge's data.\n")
        except OSError as exc:
            raise LocalIOError(
                f"cannot write the demo data in {self.base}: {exc.strerror}"
            ) from exc

    def _start_servers(self) -> None:
        client_key = asyncssh.generate_private_key("ssh-ed25519", comment="difpipe-demo")
        client_key.write_private_key(str(self.client_key_path))
        os.chmod(self.client_key_path, 0o600)
        client_key.write_public_key(str(self.client_key_path) + ".pub")
        self._servers = [
            HostServer(
                name=spec.name,
                root=self._roots[spec.name],
                host_key=asyncssh.generate_private_key("ssh-ed25519"),
                client_key=client_key,
                user=DEMO_USER,
            )
            for spec in HOSTS
        ]
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="difpipe-demo-lab", daemon=True)
        self._thread.start()
        ready.wait(_START_TIMEOUT)
        self._call(self._start_all())
        entries = []
        for spec, server in zip(HOSTS, self._servers, strict=True):
            self.hosts[spec.name] = DemoHost(
                spec.name, spec.role, server.root, server.address, server.port
            )
            entries.append(known_hosts_entry(server.address, server.port, server.host_key))
        self.known_hosts_path.write_text("".join(entries))
        os.chmod(self.known_hosts_path, 0o600)

    def _write_config(self) -> None:
        hosts = {
            spec.name: cfg.Host(
                name=spec.name,
                address=self.hosts[spec.name].address,
                port=self.hosts[spec.name].port,
                role=spec.role,
                tags=("demo",),
                description=spec.description,
                auth=cfg.Auth(key_files=(str(self.client_key_path),), agent=False),
            )
            for spec in HOSTS
        }
        defaults = cfg.Defaults(
            user=DEMO_USER,
            host_key_policy="strict",
            known_hosts=(str(self.known_hosts_path),),
            connect_timeout=5.0,
        )
        cfg.save_config(cfg.Config(hosts=hosts, defaults=defaults), self.config_path)

    async def _start_all(self) -> None:
        await asyncio.gather(*(s.start() for s in self._servers))

    async def _stop_servers(self) -> None:
        await asyncio.gather(*(s.close() for s in self._servers), return_exceptions=True)

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_START_TIMEOUT)
