"""asyncssh's data path, lighter: bounded receive windows, batched socket writes, no needless
packets or log lines.

asyncssh (2.24) re-opens a channel's whole receive window each time it hands one buffered
packet to the application, even while the packets received during a pause still wait in the
channel's buffer. With a slow consumer the peer may then send a fresh window after every
packet, and a relay holds most of a large file in memory (measured: 650 MB of RSS relaying
1 GiB to a 200 Mbit/s destination).

:func:`install` replaces that delivery step with one that leaves the bytes still buffered out
of the window it re-opens, so a peer can never have more than one window in flight beyond what
the application has taken.

It also batches what a connection sends. asyncssh writes every packet to the socket at once,
and after key exchange it puts an empty ``MSG_IGNORE`` packet before each one: a 1 MiB
channel write is 64 packets and 64 ``send`` calls, each as costly as the packet's encryption.
:func:`install` makes the packets of one turn of the event loop go out in one write, in the
same order, at the end of that turn.

That empty ``MSG_IGNORE`` shields a CBC cipher, whose next IV an observer knows, from a chosen
plaintext; an AEAD cipher (AES-GCM, ChaCha20-Poly1305: what DifPipe negotiates) derives a fresh
nonce for every packet and needs no such shield. On those, :func:`install` leaves it out: one
packet less to build, encrypt and send for each packet of data (32 KiB), and one less for the
peer to decrypt.

Last, asyncssh formats a log line for every packet it sends or receives (names, sizes, the
payload) before its logger finds that packet logging (debug level 3) is off; :func:`install`
skips that work unless it is on.
"""

from __future__ import annotations

import contextlib

from asyncssh import channel as _channel
from asyncssh import connection as _connection
from asyncssh import encryption as _encryption
from asyncssh import logging as _logging
from asyncssh import packet as _packet
from asyncssh.misc import ProtocolError

_installed = False


def _deliver_data(self, data, datatype):  # type: ignore[no-untyped-def]
    """Hand one packet to the session; re-open the window only for what it has taken."""
    half = self._init_recv_window / 2
    if self._recv_window < half:  # only then can an adjust be due: skip the sum otherwise
        open_now = self._recv_window + sum(len(chunk) for chunk, _ in self._recv_buf)
        if open_now < half:
            adjust = self._init_recv_window - open_now
            self.send_packet(_channel.MSG_CHANNEL_WINDOW_ADJUST, _channel.UInt32(adjust))
            self._recv_window += adjust
    if self._encoding:
        try:
            data = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise ProtocolError(str(exc)) from None
    if self._session is not None:
        self._session.data_received(data, datatype)


def _send(self, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """Queue ``data`` for the write at the end of this turn of the event loop."""
    if not self._transport:
        return
    queued = getattr(self, "_difpipe_out", None)
    if queued is None:
        queued = self._difpipe_out = []
        self._loop.call_soon(_write_queued, self)
    queued.append(data)


def _write_queued(conn) -> None:  # type: ignore[no-untyped-def]
    queued, conn._difpipe_out = conn._difpipe_out, None
    if conn._transport and queued:
        # as asyncssh's own write: a lost connection is reported by the transport
        with contextlib.suppress(ConnectionError):
            conn._transport.write(b"".join(queued))


_EMPTY = (b"\0\0\0\0",)  # the payload of asyncssh's shielding MSG_IGNORE: an empty string
_AEAD = tuple(
    getattr(_encryption, name)
    for name in ("GCMEncryption", "ChachaEncryption")
    if hasattr(_encryption, name)
)
_send_packet = _connection.SSHConnection.send_packet


def _send_packet_unshielded(self, pkttype, *args, handler=None):  # type: ignore[no-untyped-def]
    """asyncssh's ``send_packet``, less the empty ``MSG_IGNORE`` where the cipher is AEAD."""
    shield = pkttype == _connection.MSG_IGNORE and args == _EMPTY
    if not (shield and isinstance(self._send_encryption, _AEAD)):
        _send_packet(self, pkttype, *args, handler=handler)


_log_packet = _packet.SSHPacketLogger._log_packet


def _log_packet_when_asked(self, msg, pkttype, pktid, packet, note):  # type: ignore[no-untyped-def]
    """asyncssh's packet log line, built only when packet logging is on."""
    if _logging.SSHLogger._debug_level >= 3:
        _log_packet(self, msg, pkttype, pktid, packet, note)


def install() -> bool:
    """Apply the bounded delivery and the batched writes once; False (and no change) on an
    asyncssh without the methods they replace."""
    global _installed
    chan, conn = _channel.SSHChannel, _connection.SSHConnection
    if not _installed:
        if not all(hasattr(chan, name) for name in ("_deliver_data", "_flush_recv_buf")):
            return False
        if not hasattr(conn, "_send"):
            return False
        chan._deliver_data = _deliver_data  # type: ignore[method-assign]
        conn._send = _send  # type: ignore[method-assign]
        if _AEAD:
            conn.send_packet = _send_packet_unshielded  # type: ignore[method-assign]
        if hasattr(_logging.SSHLogger, "_debug_level"):
            _packet.SSHPacketLogger._log_packet = _log_packet_when_asked  # type: ignore[method-assign]
        _installed = True
    return True
