"""One demo host: an in-process asyncssh server rooted in its own directory.

A command runs as a real ``/bin/sh -c`` subprocess in the host's root directory (which is also
its ``HOME``), with its stdin, stdout and stderr relayed in bytes: read a chunk, write it,
wait for the other side to drain, read the next. Nothing is ever held beyond one chunk and the
SSH window, so a slow reader slows the writer down instead of filling memory. The exit status
(or the signal that ended the command) goes back to the client. A client that closes its
channel, or a signal it sends, reaches the command's whole process group; closing the server
kills whatever still runs. As sshd does, the server gives each command the default action for
the signals a session is sent, even those this process ignores (a job that a script starts
with ``&`` ignores SIGINT and SIGQUIT, and so would its children).

SFTP is served by asyncssh's own server, chrooted to the host's root, so ``data/big.bin``
names the same file over exec and over SFTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from ..core import flowcontrol

CHUNK = 256 * 1024
SHELL = "/bin/sh"
_KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a command whose client left

flowcontrol.install()  # the server's receive side is bounded like the client's

# sshd gives each connection the default action for these
_SESSION_SIGNALS = (
    signal.SIGALRM,
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGCHLD,
)
_RESET_SIGNALS = (  # and SIGPIPE and SIGXFSZ, which this Python ignores again when it starts
    "import os, signal, sys\n"
    f"for s in {tuple(map(int, (*_SESSION_SIGNALS, signal.SIGPIPE, signal.SIGXFSZ)))}:\n"
    "    signal.signal(s, signal.SIG_DFL)\n"
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def _with_default_signals(argv: list[str]) -> list[str]:
    """``argv``, started through a Python that first resets the signals when this process
    ignores one of them: an ignored signal stays ignored across fork and exec (a caught one is
    reset by exec, and SIGPIPE and SIGXFSZ by ``restore_signals``)."""
    if not any(signal.getsignal(s) is signal.SIG_IGN for s in _SESSION_SIGNALS):
        return argv
    return [sys.executable, "-I", "-S", "-c", _RESET_SIGNALS, *argv]


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


async def _copy_out(reader: asyncio.StreamReader, writer: asyncssh.SSHWriter[bytes]) -> None:
    """A command's stdout or stderr to the SSH channel, one chunk in flight at a time."""
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()


async def _copy_in(process: asyncssh.SSHServerProcess[bytes], proc: asyncio.subprocess.Process):
    """The channel's data to the command's stdin; signals to its process group.

    When the command stops reading, the rest of the input is read and dropped, as sshd does,
    so that the client never blocks on a window that will not open again.
    """
    stdin = proc.stdin
    assert stdin is not None
    while True:
        try:
            data = await process.stdin.read(CHUNK)
        except asyncssh.SignalReceived as exc:
            number = getattr(signal, f"SIG{exc.signal}", None)
            if isinstance(number, signal.Signals):
                _signal_group(proc, number)
            continue
        except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
            continue
        except (asyncssh.Error, OSError):
            break
        if not data:
            break
        if stdin.is_closing():
            continue
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            stdin.close()
    if not stdin.is_closing():
        stdin.close()


@dataclass
class HostServer:
    """The SSH server of one demo host; ``start`` and ``close`` run on the lab's loop."""

    name: str
    root: Path
    host_key: asyncssh.SSHKey
    client_key: asyncssh.SSHKey
    user: str
    address: str = "127.0.0.1"
    port: int = 0
    _server: asyncssh.SSHAcceptor | None = None
    _procs: set[asyncio.subprocess.Process] = field(default_factory=set)
    _sessions: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        authorized = asyncssh.import_authorized_keys(
            self.client_key.export_public_key("openssh").decode()
        )
        self._server = await asyncssh.listen(
            self.address,
            self.port,
            server_host_keys=[self.host_key],
            authorized_client_keys=authorized,
            process_factory=self._session,
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=os.fsencode(self.root)),
            allow_scp=False,
            encoding=None,
            line_editor=False,
            x11_forwarding=False,
            agent_forwarding=False,
            allow_pty=False,
        )
        self.port = self._server.get_port()

    async def close(self) -> None:
        """Stop listening, end every session and kill every command still running."""
        if self._server is not None:
            self._server.close()
        for proc in list(self._procs):
            _signal_group(proc, signal.SIGKILL)
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _environment(self) -> dict[str, str]:
        root = str(self.root)
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": root,
            "PWD": root,
            "USER": self.user,
            "LOGNAME": self.user,
            "SHELL": SHELL,
            "LANG": "C.UTF-8",
        }

    async def _session(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self._serve(process)
        finally:
            self._sessions.discard(task)

    async def _serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        if process.subsystem is not None:
            process.stderr.write(f"{self.name}: unknown subsystem {process.subsystem}\n".encode())
            process.exit(1)
            return
        argv = [SHELL] if process.command is None else [SHELL, "-c", process.command]
        try:
            proc = await asyncio.create_subprocess_exec(
                *_with_default_signals(argv),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.root,
                env=self._environment(),
                start_new_session=True,
                limit=2 * CHUNK,
            )
        except OSError as exc:
            process.stderr.write(f"{self.name}: cannot start {SHELL}: {exc.strerror}\n".encode())
            process.exit(127)
            return
        self._procs.add(proc)
        feeder = asyncio.create_task(_copy_in(process, proc))
        closed = asyncio.create_task(process.channel.wait_closed())
        finished = asyncio.create_task(self._run(process, proc))
        try:
            await asyncio.wait({finished, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not finished.done():  # the client went away first: stop the command
                await self._stop(proc)
            await asyncio.gather(finished, return_exceptions=True)
        finally:
            for task in (feeder, closed, finished):
                task.cancel()
            await asyncio.gather(feeder, closed, finished, return_exceptions=True)
            if proc.returncode is None:
                _signal_group(proc, signal.SIGKILL)
                await proc.wait()
            self._procs.discard(proc)

    async def _run(
        self, process: asyncssh.SSHServerProcess[bytes], proc: asyncio.subprocess.Process
    ) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            await asyncio.gather(
                _copy_out(proc.stdout, process.stdout), _copy_out(proc.stderr, process.stderr)
            )
        except (asyncssh.Error, OSError):  # the channel closed under us
            await self._stop(proc)
            return
        status = await proc.wait()
        if process.is_closing():
            return
        if status < 0:
            process.exit_with_signal(signal.Signals(-status).name.removeprefix("SIG"))
        else:
            process.exit(status)

    @staticmethod
    async def _stop(proc: asyncio.subprocess.Process) -> None:
        _signal_group(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), _KILL_GRACE)
        except TimeoutError:
            _signal_group(proc, signal.SIGKILL)
            await proc.wait()
