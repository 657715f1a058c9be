"""A slow consumer must not make asyncssh buffer the whole stream (see core/flowcontrol.py)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path

from asyncssh.constants import MSG_CHANNEL_DATA, MSG_IGNORE
from asyncssh.logging import SSHLogger

from difpipe_tui.core import flowcontrol
from difpipe_tui.core.config import load_config
from difpipe_tui.core.remote import command
from difpipe_tui.core.ssh import SSHPool

MiB = 1024 * 1024


async def test_slow_reader_keeps_buffers_within_one_window(lab, tmp_path):
    assert flowcontrol.install()
    src = Path(lab.hosts["edge"].root) / "flow.bin"
    src.write_bytes(os.urandom(48 * MiB))
    config = load_config(lab.write_config(tmp_path / "difpipe.toml"))
    peak = 0
    try:
        async with SSHPool(config, known_hosts_file=tmp_path / "kh") as pool:
            hc = await pool.connect("edge")
            proc = await hc.conn.create_process(command("cat", "--", str(src)), encoding=None)
            window = proc._chan.get_recv_window()
            total = 0
            while True:
                data = await proc.stdout.read(256 * 1024)
                if not data:
                    break
                total += len(data)
                held = proc._recv_buf_len + sum(len(c) for c, _ in proc._chan._recv_buf)
                peak = max(peak, held)
                await asyncio.sleep(0.002)  # a consumer slower than the link
            await proc.wait()
    finally:
        src.unlink()
    assert total == 48 * MiB
    # the session's limit (one window) plus at most one window in flight
    assert peak <= 2 * window + MiB, (
        f"peak {peak / MiB:.1f} MiB with a {window / MiB:.1f} MiB window"
    )


async def test_the_packets_of_one_write_go_out_in_few_socket_writes(lab, tmp_path):
    """asyncssh sends a 1 MiB channel write as 32 data packets, each after an empty
    MSG_IGNORE packet: batched, they take a handful of socket writes, not 64, and arrive whole."""
    assert flowcontrol.install()
    config = load_config(lab.write_config(tmp_path / "difpipe.toml"))
    data = os.urandom(4 * MiB)
    async with SSHPool(config, known_hosts_file=tmp_path / "kh") as pool:
        hc = await pool.connect("edge")
        transport = hc.conn._transport
        calls = []
        write = transport.write

        def counting(chunk):
            calls.append(len(chunk))
            write(chunk)

        transport.write = counting
        try:
            proc = await hc.conn.create_process("sha256sum", encoding=None)
            for i in range(0, len(data), MiB):
                proc.stdin.write(data[i : i + MiB])
                await proc.stdin.drain()
            proc.stdin.write_eof()
            out = await proc.stdout.read()
            await proc.wait()
        finally:
            transport.write = write
    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()
    assert sum(calls) > len(data)
    assert len(calls) < 40, f"{len(calls)} socket writes for {len(data) // MiB} MiB"


async def _packet_types_sent(lab, tmp_path, monkeypatch, ciphers: tuple[str, ...]):
    """The types of the packets a 2 MiB write sends after the session opens, and the cipher."""
    assert flowcontrol.install()
    config = load_config(lab.write_config(tmp_path / "difpipe.toml"))
    sent: list[int] = []
    forward = flowcontrol._send_packet

    def counting(self, pkttype, *args, handler=None):
        sent.append(pkttype)
        forward(self, pkttype, *args, handler=handler)

    data = os.urandom(2 * MiB)
    async with SSHPool(config, known_hosts_file=tmp_path / "kh", ciphers=ciphers) as pool:
        hc = await pool.connect("edge")
        proc = await hc.conn.create_process("sha256sum", encoding=None)
        monkeypatch.setattr(flowcontrol, "_send_packet", counting)
        proc.stdin.write(data)
        await proc.stdin.drain()
        proc.stdin.write_eof()
        out = await proc.stdout.read()
        await proc.wait()
        cipher = hc.conn.get_extra_info("send_cipher")
    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()
    return sent, cipher


async def test_an_aead_cipher_sends_no_shielding_ignore_packets(lab, tmp_path, monkeypatch):
    sent, cipher = await _packet_types_sent(lab, tmp_path, monkeypatch, ("aes128-gcm@openssh.com",))
    assert cipher == "aes128-gcm@openssh.com"
    assert sent.count(MSG_CHANNEL_DATA) >= 64  # 2 MiB in packets of at most 32 KiB
    assert MSG_IGNORE not in sent


async def test_a_ctr_cipher_keeps_them(lab, tmp_path, monkeypatch):
    sent, cipher = await _packet_types_sent(lab, tmp_path, monkeypatch, ("aes128-ctr",))
    assert cipher == "aes128-ctr"
    assert sent.count(MSG_IGNORE) >= sent.count(MSG_CHANNEL_DATA) >= 64


async def test_packet_log_lines_are_built_only_when_packet_logging_is_on(
    lab, tmp_path, monkeypatch, caplog
):
    """asyncssh builds a log line per packet; at debug level 3 it still logs them all."""
    assert flowcontrol.install()
    built: list[int] = []
    real = flowcontrol._log_packet

    def counting(self, msg, pkttype, pktid, packet, note):
        built.append(pkttype)
        real(self, msg, pkttype, pktid, packet, note)

    monkeypatch.setattr(flowcontrol, "_log_packet", counting)
    config = load_config(lab.write_config(tmp_path / "difpipe.toml"))
    async with SSHPool(config, known_hosts_file=tmp_path / "kh") as pool:
        await pool.connect("edge")
        await pool.run("edge", "head -c 100000 /dev/zero")
        assert built == []
        monkeypatch.setattr(SSHLogger, "_debug_level", 3)
        with caplog.at_level(logging.DEBUG, logger="asyncssh"):
            await pool.run("edge", "head -c 100000 /dev/zero")
    assert MSG_CHANNEL_DATA in built
    assert any("MSG_CHANNEL_DATA" in r.getMessage() for r in caplog.records)
