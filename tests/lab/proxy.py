"""A TCP proxy that adds latency, for machines where ``tc netem`` is not available.

Every chunk read from one side is stamped with the time it arrived and written to the other
side ``delay`` seconds later by a writer thread of its own. Reading never waits for writing, so
the delay is added to each byte's trip without capping throughput, and order is kept because
each direction is one FIFO queue.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time

CHUNK = 64 * 1024
QUEUE_CHUNKS = 512
"""Up to 32 MiB in flight per direction before reading pauses (backpressure)."""


class _Direction:
    def __init__(
        self,
        src: socket.socket,
        dst: socket.socket,
        delay: float,
        closed: threading.Event,
        done: threading.Event,
    ) -> None:
        self.src, self.dst, self.delay = src, dst, delay
        self.closed, self.done = closed, done
        self.items: queue.Queue[tuple[float, bytes]] = queue.Queue(QUEUE_CHUNKS)

    def start(self, label: str) -> None:
        threading.Thread(target=self._read, name=f"{label}-read", daemon=True).start()
        threading.Thread(target=self._write, name=f"{label}-write", daemon=True).start()

    def _put(self, item: tuple[float, bytes]) -> bool:
        while not self.closed.is_set():
            try:
                self.items.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        while True:
            try:
                data = self.src.recv(CHUNK)
            except OSError:
                data = b""
            if not self._put((time.monotonic() + self.delay, data)) or not data:
                return

    def _write(self) -> None:
        try:
            while not self.closed.is_set():
                try:
                    due, data = self.items.get(timeout=0.2)
                except queue.Empty:
                    continue
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        self.dst.shutdown(socket.SHUT_WR)
                    return
                self.dst.sendall(data)
        except OSError:
            # The receiving side is gone: stop the sending side too.
            self.closed.set()
            with contextlib.suppress(OSError):
                self.src.shutdown(socket.SHUT_RDWR)
        finally:
            self.done.set()


class _Connection:
    def __init__(self, client: socket.socket, upstream: socket.socket, delay: float) -> None:
        self.sockets = (client, upstream)
        self.closed = threading.Event()
        self.finished = (threading.Event(), threading.Event())
        self.directions = (
            _Direction(client, upstream, delay, self.closed, self.finished[0]),
            _Direction(upstream, client, delay, self.closed, self.finished[1]),
        )

    def start(self, label: str) -> None:
        self.directions[0].start(f"{label}-up")
        self.directions[1].start(f"{label}-down")
        threading.Thread(target=self._reap, name=f"{label}-reap", daemon=True).start()

    def _reap(self) -> None:
        for event in self.finished:
            event.wait()
        self.close()

    def close(self) -> None:
        self.closed.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class DelayProxy:
    """Listen on ``listen_host`` and forward to ``target``, adding ``delay`` seconds each way."""

    def __init__(
        self, target: tuple[str, int], delay: float, listen_host: str = "127.0.0.1"
    ) -> None:
        self.target = target
        self.delay = delay
        self._listener = socket.create_server((listen_host, 0))
        self._listener.settimeout(0.2)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._closed = threading.Event()
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._accept, name=f"delay-proxy-{self.address[1]}", daemon=True
        )
        self._thread.start()

    def _accept(self) -> None:
        count = 0
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(client, upstream, self.delay)
            with self._lock:
                if self._closed.is_set():
                    connection.close()
                    return
                self._connections = [c for c in self._connections if not c.closed.is_set()]
                self._connections.append(connection)
            count += 1
            connection.start(f"delay-proxy-{self.address[1]}-{count}")

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._thread.join(timeout=2)

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
