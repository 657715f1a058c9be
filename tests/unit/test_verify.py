import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from difpipe_tui.core.errors import LocalIOError, RemoteCommandError, UsageError, VerifyError
from difpipe_tui.core.remote import pipeline
from difpipe_tui.core.transfer.ends import (
    DIGEST_RATE,
    FINISH_TIMEOUT,
    RemoteSink,
    RemoteSource,
    _remote_error,
    reader_end,
)
from difpipe_tui.core.transfer.tarstream import RemoteTarSink
from difpipe_tui.core.transfer.verify import (
    DIGESTS,
    HASH_IN_THREAD,
    compare,
    digest_argv,
    file_digest_local,
    hash_piece,
    new_hasher,
    parse_digest_output,
    prefix_digest_argvs,
    prefix_digest_local,
    source_digest_output,
)

TOOL_OF = {"sha256": "sha256sum", "blake2b": "b2sum"}


def needs_binary(name: str) -> None:
    if shutil.which(name) is None:
        pytest.skip(f"the {name} command is not installed (apt-get install -y coreutils)")


@pytest.fixture
def sample_file(tmp_path):
    path = tmp_path / "it's a $file\nwith newline"
    path.write_bytes(os.urandom(300_000))
    return path


def shell(line: str) -> str:
    return subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("algo", ["sha256", "blake2b"])
def test_hasher_matches_the_command_line_tool(algo, sample_file):
    tool = TOOL_OF[algo]
    needs_binary(tool)
    expected = parse_digest_output(shell(pipeline([tool], stdin_from=sample_file)), algo)
    h = new_hasher(algo)
    h.update(sample_file.read_bytes())
    assert h.hexdigest() == expected
    assert file_digest_local(sample_file, algo) == expected


@pytest.mark.parametrize("algo", ["sha256", "blake2b"])
@pytest.mark.parametrize("n", [0, 1, 65_536, 1_048_577, 10_000_000])
def test_remote_prefix_pipeline_equals_local(algo, n, sample_file):
    needs_binary(TOOL_OF[algo])
    argvs = prefix_digest_argvs(str(sample_file), n, algo, {"head", TOOL_OF[algo]})
    assert argvs is not None and argvs[0][:4] == ["head", "-c", str(n), "--"]
    remote = parse_digest_output(shell(pipeline(*argvs)), algo)
    assert remote == prefix_digest_local(sample_file, n, algo)


def test_prefix_pipeline_with_shasum_and_a_dash_path(tmp_path):
    needs_binary("shasum")
    path = tmp_path / "-n"
    path.write_bytes(b"0123456789")
    argvs = prefix_digest_argvs(str(path), 4, "sha256", {"shasum"})
    assert argvs == [["head", "-c", "4", "--", str(path)], ["shasum", "-a", "256"]]
    remote = parse_digest_output(shell(pipeline(*argvs)), "sha256")
    assert remote == prefix_digest_local(path, 4, "sha256")


def test_hasher_copy_snapshots_a_prefix():
    h = new_hasher("sha256")
    h.update(b"abc")
    snap = h.copy()
    h.update(b"def")
    assert snap.hexdigest() == new_digest(b"abc")
    assert h.hexdigest() == new_digest(b"abcdef")
    b = new_hasher("blake2b")
    assert b.digest_size == 64 and len(b.copy().hexdigest()) == 128
    none = new_hasher("none")
    none.update(b"x")
    assert none.copy().hexdigest() == ""


def new_digest(data: bytes) -> str:
    h = new_hasher("sha256")
    h.update(data)
    return h.hexdigest()


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=3000), cut=st.integers(0, 3500))
def test_prefix_digest_local_is_head_semantics(tmp_path_factory, data, cut):
    path = tmp_path_factory.mktemp("p") / "f"
    path.write_bytes(data)
    assert prefix_digest_local(path, cut, "sha256") == new_digest(data[:cut])


def test_digest_argv_from_tools():
    assert digest_argv("sha256", {"sha256sum", "shasum"}) == ["sha256sum"]
    assert digest_argv("sha256", {"shasum"}) == ["shasum", "-a", "256"]
    assert digest_argv("sha256", {"b2sum"}) is None
    assert digest_argv("blake2b", {"b2sum"}) == ["b2sum"]
    assert digest_argv("blake2b", {"sha256sum", "shasum"}) is None
    assert digest_argv("none", {"sha256sum"}) is None
    fast = {"sha256sum", "b2sum", "openssl"}
    assert digest_argv("sha256", fast) == ["openssl", "dgst", "-sha256", "-r"]
    assert digest_argv("blake2b", fast) == ["openssl", "dgst", "-blake2b512", "-r"]
    assert prefix_digest_argvs("/x", 5, "blake2b", {"sha256sum"}) is None
    with pytest.raises(
        UsageError, match='--verify: expected one of sha256, blake2b, none, got "md5"'
    ):
        digest_argv("md5", set())
    with pytest.raises(UsageError):
        new_hasher("md5")
    assert DIGESTS == ("sha256", "blake2b", "none")


SHA = "1a2b3c4d5e6f7a8b" + "0" * 48
B2 = "ab" * 64


@pytest.mark.parametrize(
    ("text", "algo", "expected"),
    [
        (f"{SHA}  -\n", "sha256", SHA),
        (f"{SHA.upper()}  -\n", "sha256", SHA),
        (f"\\{SHA}  a\\\\b\n", "sha256", SHA),
        (f"{B2}  -\n", "blake2b", B2),
        (f"  {SHA}\n", "sha256", SHA),
    ],
)
def test_parse_digest_output(text, algo, expected):
    assert parse_digest_output(text, algo) == expected


@pytest.mark.parametrize(
    ("text", "algo"),
    [("", "sha256"), (f"{B2}  -", "sha256"), (f"{SHA}  -", "blake2b"), ("zz" * 32, "sha256")],
)
def test_parse_digest_output_rejects(text, algo):
    with pytest.raises(RemoteCommandError, match=f"expected a {algo} digest"):
        parse_digest_output(text, algo)


def test_compare():
    compare(SHA, SHA.upper(), what="cloud:/data/f")
    other = "9f8e7d6c5b4a3928" + "1" * 48
    with pytest.raises(VerifyError) as err:
        compare(SHA, other, what="cloud:/data/f")
    assert str(err.value) == (
        "cloud:/data/f: sha256 mismatch: source 1a2b3c4d5e6f7a8b…, destination 9f8e7d6c5b4a3928…"
    )
    with pytest.raises(VerifyError, match="blake2b mismatch"):
        compare(B2, "cd" * 64, what="f")


def test_compare_shows_enough_to_tell_digests_apart():
    a = "0" * 40 + "a" + "0" * 23
    b = "0" * 40 + "b" + "0" * 23
    with pytest.raises(VerifyError) as err:
        compare(a, b, what="f")
    msg = str(err.value)
    assert f"source {a[:44]}…" in msg and f"destination {b[:44]}…" in msg


def test_prefix_digest_local_missing_file(tmp_path):
    with pytest.raises(LocalIOError, match=r"nope: cannot read: No such file"):
        prefix_digest_local(tmp_path / "nope", 10, "sha256")


@pytest.mark.parametrize("algo", ["sha256", "blake2b"])
def test_openssl_digest_matches_hashlib(tmp_path, algo):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing: run scripts/install-test-deps")
    data = os.urandom(100_000)
    out = subprocess.run(
        digest_argv(algo, {"openssl"}), input=data, capture_output=True, check=True
    ).stdout.decode()
    hasher = new_hasher(algo)
    hasher.update(data)
    assert parse_digest_output(out, algo) == hasher.hexdigest()


@pytest.mark.parametrize("algo", ["sha256", "blake2b"])
@pytest.mark.parametrize("offset", [0, 1, 299_999, 300_000])
def test_a_source_that_hashes_prints_the_digest_of_what_it_sends(algo, offset, sample_file):
    """The stream command of a source asked to hash: the bytes on stdout, their digest on
    stderr after the marker, for the same range (``tail -c +N`` on a resumed run), and where
    its reader of the file ended: the file's end."""
    tool = digest_argv(algo, {"openssl", TOOL_OF[algo]})
    assert tool is not None
    needs_binary(tool[0])
    source = RemoteSource(None, "h", str(sample_file), offset=offset, digest_argv=tool)
    run = subprocess.run(["sh", "-c", source.command_line()], capture_output=True, check=True)
    sent = sample_file.read_bytes()[offset:]
    assert run.stdout == sent
    stderr = run.stderr.decode()
    expected = new_hasher(algo)
    expected.update(sent)
    assert source_digest_output(stderr, algo) == expected.hexdigest()
    assert "difpipe-fail" not in stderr
    assert reader_end(stderr) == sample_file.stat().st_size


#: A host with POSIX tools and openssl (``cat | tee | openssl``), and one with python3 too
#: (the one-process writer of :mod:`difpipe_tui.core.transfer.hashwriter`).
SINK_TOOLS = [
    pytest.param({"openssl"}, id="tee"),
    pytest.param(
        {"openssl", "python3"},
        id="py",
        marks=pytest.mark.skipif(shutil.which("python3") is None, reason="needs python3"),
    ),
]


@pytest.mark.parametrize("tools", SINK_TOOLS)
@pytest.mark.parametrize("algo", ["sha256", "blake2b"])
@pytest.mark.parametrize("offset", [0, 299_999])
def test_a_sink_that_hashes_prints_the_digest_of_what_it_writes(algo, offset, tools, tmp_path):
    """The stream command of a sink asked to hash: the part file gets the bytes (after the
    kept prefix of a resumed run) and stdout the digest of exactly the bytes written."""
    needs_binary("openssl")
    sink = RemoteSink(None, "h", str(tmp_path / "f"), algo=algo, tools=tools)
    assert ("python3 -E -S -c" in sink.stream_line()) == ("python3" in tools)
    data = os.urandom(3 * 1024 * 1024 + 7)
    kept = os.urandom(offset)
    Path(sink.part).write_bytes(kept + b"tail that the resume cuts off")
    sink._offset, sink._append = offset, offset > 0
    run = subprocess.run(["sh", "-c", sink.command_line()], input=data, capture_output=True)
    assert run.returncode == 0, run.stderr
    assert run.stderr == b""
    assert Path(sink.part).read_bytes() == kept + data
    expected = new_hasher(algo)
    expected.update(data)
    assert parse_digest_output(run.stdout.decode(), algo) == expected.hexdigest()


@pytest.mark.parametrize("tools", SINK_TOOLS)
def test_a_tree_sink_that_hashes_extracts_and_prints_the_digest_of_the_stream(tools, tmp_path):
    """The stream command of a directory sink asked to hash: the staging directory gets the
    tree, stdout the digest of exactly the tar stream it was given."""
    needs_binary("openssl")
    needs_binary("tar")
    tree = tmp_path / "src"
    (tree / "sub dir").mkdir(parents=True)
    (tree / "a.bin").write_bytes(os.urandom(300_000))
    (tree / "sub dir" / "-b $(x)").write_bytes(os.urandom(70_000))
    stream = subprocess.run(["tar", "-C", str(tree), "-cf", "-", "."], capture_output=True)
    sink = RemoteTarSink(None, "h", str(tmp_path / "dst"), algo="sha256", tools=tools)
    line = sink.command_line()
    assert ("python3 " in line) == ("python3" in tools)
    run = subprocess.run(["sh", "-c", line], input=stream.stdout, capture_output=True)
    assert run.returncode == 0, run.stderr
    part = Path(sink.part)
    for name in ("a.bin", "sub dir/-b $(x)"):
        assert (part / name).read_bytes() == (tree / name).read_bytes()
    expected = new_hasher("sha256")
    expected.update(stream.stdout)
    assert parse_digest_output(run.stdout.decode(), "sha256") == expected.hexdigest()
    assert not Path(sink.part + ".fifo").exists()


@pytest.mark.parametrize("tools", SINK_TOOLS)
def test_a_sink_that_cannot_write_reports_the_stage(tools, tmp_path):
    needs_binary("openssl")
    sink = RemoteSink(None, "h", str(tmp_path / "f"), algo="sha256", tools=tools)
    sink.part = str(tmp_path / "gone" / "f.part")  # its directory does not exist
    line = sink.stream_line()
    run = subprocess.run(["sh", "-c", line], input=b"x" * 100_000, capture_output=True)
    assert b"difpipe-fail write" in run.stderr
    assert b"No such file or directory" in run.stderr


@pytest.mark.parametrize("tools", SINK_TOOLS)
def test_a_full_disk_stops_the_sinks_stream_at_once(tools):
    """GNU tee stops at the failed write instead of copying the rest into the digest: the
    digest tool then sees only what came before, and the sender's pipe breaks early. The
    python3 writer stops there too, and prints no digest at all."""
    needs_binary("openssl")
    sink = RemoteSink(None, "h", "/srv/f", algo="sha256", tools=tools)
    sink.part = "/dev/full"  # every write: ENOSPC
    data = b"\0" * (16 * 1024 * 1024)
    with subprocess.Popen(
        ["sh", "-c", sink.stream_line()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        sent = 0
        with contextlib.suppress(BrokenPipeError):
            while sent < len(data):
                proc.stdin.write(data[sent : sent + 65536])
                sent += 65536
            proc.stdin.close()
        out, err = proc.stdout.read(), proc.stderr.read()
    assert sent < len(data)  # the pipe broke: the rest was never read
    assert b"difpipe-fail write" in err
    assert b"No space left on device" in err
    if "python3" in tools:
        assert out == b""
    else:
        assert parse_digest_output(out.decode(), "sha256") != hashlib.sha256(data).hexdigest()


def test_a_sink_appends_through_the_same_tee():
    needs_binary("openssl")
    sink = RemoteSink(None, "h", "/srv/f", algo="sha256", tools={"openssl"})
    sink._append = True
    assert "$t -a -- " in sink.stream_line()


def test_a_source_that_cannot_read_reports_both_stages(tmp_path):
    needs_binary("sha256sum")
    source = RemoteSource(None, "h", str(tmp_path / "gone"), digest_argv=["sha256sum"])
    run = subprocess.run(["sh", "-c", source.command_line()], capture_output=True, text=True)
    assert run.stdout == ""
    assert source_digest_output(run.stderr, "sha256") is None
    assert "difpipe-fail read" in run.stderr and "difpipe-fail digest" in run.stderr
    assert reader_end(run.stderr) is None
    err = _remote_error("h", source.path, run.stderr, run.returncode)
    assert str(err) == f"h: {source.path}: no such file or directory"


def test_reader_end_reads_the_marked_offset():
    assert reader_end("noise\ndifpipe-sent 8388608\ndifpipe-digest ab\n") == 8388608
    assert reader_end("difpipe-sent\ndifpipe-sent x\ndifpipe-sent 1 2\n") is None
    assert reader_end("") is None
    # the line is not what the user is told when the command fails
    err = _remote_error("h", "/f", "difpipe-sent 5\ncat: /f: Input/output error\n", 1)
    assert str(err) == "h: /f: cat: /f: Input/output error"


class ShellProcess:
    """A source's command line run by a local ``sh``, shaped like the asyncssh process that
    :class:`RemoteSource` reads."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc, self.stdout = proc, proc.stdout
        self.exit_status: int | None = None
        self.stderr = b""

    async def wait(self) -> SimpleNamespace:
        out, self.stderr = await self.proc.communicate()
        self.exit_status = self.proc.returncode
        return SimpleNamespace(stdout=out, stderr=self.stderr)


async def run_source(source: RemoteSource) -> ShellProcess:
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", source.command_line(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    source._proc = shell = ShellProcess(proc)
    return shell


async def read_to_end(source: RemoteSource) -> bytes:
    sent = bytearray()
    while chunk := await asyncio.wait_for(source.read(65536), 10):
        sent += chunk
    return bytes(sent)


async def test_a_source_of_known_length_ends_its_stream_before_its_hash_does(sample_file):
    """With a digest, the channel's end waits for the host's hash (sshd holds EOF while the
    hash holds stderr): a source that knows its length ends the stream when the file has
    arrived, and :meth:`finish` waits for the hash, here a slow one."""
    needs_binary("sha256sum")
    data = sample_file.read_bytes()
    slow = ["sh", "-c", "sleep 2; exec sha256sum"]
    source = RemoteSource(None, "h", str(sample_file), digest_argv=slow, length=len(data))
    began = time.monotonic()
    shell = await run_source(source)
    sent = await read_to_end(source)
    streamed = time.monotonic() - began
    await asyncio.wait_for(source.finish(), 10)
    assert sent == data
    assert streamed < 1.5 <= time.monotonic() - began  # the hash was still sleeping
    assert source_digest_output(shell.stderr.decode(), "sha256") == hashlib.sha256(data).hexdigest()


async def test_a_source_longer_than_its_known_length_fails_as_changed(sample_file):
    needs_binary("sha256sum")
    size = sample_file.stat().st_size
    source = RemoteSource(None, "h", str(sample_file), digest_argv=["sha256sum"], length=size - 10)
    await run_source(source)
    assert len(await read_to_end(source)) == size - 10
    with pytest.raises(VerifyError, match="changed size while it was read"):
        await asyncio.wait_for(source.finish(), 10)


def test_a_hashing_source_waits_for_its_digest_in_proportion_to_the_file():
    """After the stream, :meth:`finish` waits for the host's hash: a minute at least, more
    for a file that could not have been hashed at the slowest rate granted by then."""
    plain = RemoteSource(None, "h", "/f")
    hashed = RemoteSource(None, "h", "/f", digest_argv=["sha256sum"])
    hashed._opened = time.monotonic()
    assert plain.finish_timeout() == hashed.finish_timeout() == FINISH_TIMEOUT
    hashed._received = 300 * DIGEST_RATE  # 300 s of hashing at that rate
    assert 299 < hashed.finish_timeout() <= 300
    hashed._opened -= 280  # the stream took 280 s of them: the minute is left
    assert hashed.finish_timeout() == FINISH_TIMEOUT
    plain._received = hashed._received
    assert plain.finish_timeout() == FINISH_TIMEOUT  # no hash to wait for


def test_source_digest_output_takes_one_marked_digest():
    digest = "ab" * 32
    assert source_digest_output(f"noise\ndifpipe-digest {digest} *stdin\n", "sha256") == digest
    assert source_digest_output("difpipe-fail read 1\n", "sha256") is None
    with pytest.raises(RemoteCommandError):
        source_digest_output(f"difpipe-digest {digest}\ndifpipe-digest {digest}\n", "sha256")
    with pytest.raises(RemoteCommandError):
        source_digest_output("difpipe-digest not-hex\n", "sha256")


def test_a_reader_that_stops_stops_the_source_hash(tmp_path):
    """The background hash of a source ends with the stream when the reader goes away, instead
    of reading a large file to its end (the remote session is its own process group)."""
    tool = digest_argv("sha256", {"openssl", "sha256sum"})
    assert tool is not None
    needs_binary(tool[0])
    big = tmp_path / "big.sparse"
    with open(big, "wb") as fh:
        fh.truncate(64 * 1024**3)  # minutes of hashing
    source = RemoteSource(None, "h", str(big), digest_argv=tool)
    proc = subprocess.Popen(
        ["sh", "-c", source.command_line()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert len(proc.stdout.read(1024 * 1024)) == 1024 * 1024
    proc.stdout.close()
    try:
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while session_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session_members(proc.pid) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def session_members(sid: int) -> list[int]:
    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p.pid)
    return found


async def test_hash_piece_hashes_in_order_and_lets_the_loop_run():
    hasher, want = new_hasher("sha256"), hashlib.sha256()
    pieces = [b"a" * 10, os.urandom(64 * 1024 * 1024), b"b" * 1000, os.urandom(HASH_IN_THREAD)]
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    await hash_piece(hasher, pieces[1])  # ~40 ms of SHA-256: the loop runs meanwhile
    during = ticks - before
    task.cancel()
    hasher = new_hasher("sha256")
    for piece in pieces:
        await hash_piece(hasher, piece)
        want.update(piece)
    assert hasher.hexdigest() == want.hexdigest()
    assert during > 1


@pytest.mark.parametrize("tools", SINK_TOOLS)
def test_a_tree_sink_whose_tar_fails_says_so_and_prints_no_digest(tools, tmp_path):
    """tar cannot extract (its directory is gone): the stage is reported and the command ends
    (nothing waits on a reader that left)."""
    needs_binary("openssl")
    needs_binary("tar")
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "a.bin").write_bytes(os.urandom(3_000_000))
    stream = subprocess.run(["tar", "-C", str(tree), "-cf", "-", "."], capture_output=True)
    sink = RemoteTarSink(None, "h", str(tmp_path / "dst"), algo="sha256", tools=tools)
    sink.part = str(tmp_path / "gone" / "dst.part")
    line = sink.stream_line().replace(sink.part + ".fifo", str(tmp_path / "f.fifo"))
    run = subprocess.run(["sh", "-c", line], input=stream.stdout, capture_output=True, timeout=30)
    assert b"difpipe-fail write" in run.stderr
    if "python3" in tools:  # it stops at its failed write, before any digest
        assert run.stdout == b""
