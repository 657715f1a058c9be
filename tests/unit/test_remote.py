import shlex
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from difpipe_tui.core.remote import (
    TOOL_PROBE,
    TOOL_PROBE_START,
    Raw,
    command,
    parse_tool_probe,
    pipeline,
    quote_arg,
)
from difpipe_tui.core.transfer.plan import SURVEY

NASTY = [
    "plain",
    "with space",
    "it's",
    'double"quote',
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "a;b",
    "line\nbreak",
    "-rf",
    "--",
    "*",
    "~root",
    "",
    "tab\there",
    "back\\slash",
    "ünïcode",
]


@pytest.mark.parametrize("arg", NASTY)
def test_quoted_argument_reaches_the_shell_unchanged(arg):
    out = subprocess.run(
        ["sh", "-c", f"printf '%s' {quote_arg(arg)}"], capture_output=True, check=True
    )
    assert out.stdout.decode() == arg


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=20),
        min_size=1,
        max_size=4,
    )
)
def test_command_round_trips_through_shlex(argv):
    assert shlex.split(command(*argv)) == argv


def test_nul_byte_refused():
    with pytest.raises(ValueError, match="NUL"):
        quote_arg("a\x00b")


def test_bool_is_not_an_argument():
    with pytest.raises(TypeError):
        quote_arg(True)


def test_pipeline_quotes_every_part(tmp_path):
    src = tmp_path / "in $(x) 'q'"
    src.write_text("hello\n")
    dst = tmp_path / "out; rm -rf"
    line = pipeline(["cat", "--", str(src)], ["tr", "a-z", "A-Z"], stdout_to=str(dst))
    subprocess.run(["sh", "-c", line], check=True)
    assert dst.read_text() == "HELLO\n"
    line = pipeline(["cat"], stdin_from=str(src), stdout_to=str(dst), append=True)
    subprocess.run(["sh", "-c", line], check=True)
    assert dst.read_text() == "HELLO\nhello\n"


def test_pipeline_and_then(tmp_path):
    a, b = tmp_path / "a b", tmp_path / "c d"
    a.write_text("x")
    subprocess.run(
        ["sh", "-c", pipeline(["cat", str(a)], stdout_to=str(b), and_then=["rm", "--", str(a)])],
        check=True,
    )
    assert b.read_text() == "x" and not a.exists()


def test_raw_is_not_quoted():
    assert command(Raw("echo"), "a b") == "echo 'a b'"


def test_tool_probe_runs_on_local_sh():
    out = subprocess.run(["sh", "-c", TOOL_PROBE], capture_output=True, text=True, check=True)
    info = parse_tool_probe(out.stdout)
    assert info.has("sh") and info.has("cat")
    assert info.os == "Linux"
    assert info.arch
    assert info.disk_free_bytes and info.disk_free_bytes > 0
    assert info.first("nope", "cat") == "cat"


def test_parse_tool_probe_ignores_garbage():
    info = parse_tool_probe("tool zstd /usr/bin/zstd\ntool evil /x\nnoise\ndisk 10 x\nos Linux\n")
    assert info.tool_names == ["zstd"]
    assert info.disk_free_bytes is None
    assert info.os == "Linux"


def test_tool_probe_reports_only_what_the_path_has(tmp_path):
    """No python3 and few tools: the missing ones are absent, not empty, and the script ends."""
    for tool in ("cat", "df", "awk", "uname"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    out = subprocess.run(
        ["/bin/sh", "-c", TOOL_PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": str(tmp_path), "HOME": "/nowhere"},
    )
    info = parse_tool_probe(out.stdout)
    assert info.tool_names == ["cat", "df"]  # awk and uname are not probed
    assert info.os == "Linux" and info.home == "/nowhere"
    assert info.disk_total_bytes and info.disk_free_bytes


def test_survey_counts_a_tree_and_samples_it_last(tmp_path):
    tree = tmp_path / "t"
    (tree / "sub").mkdir(parents=True)
    for i in range(30):
        (tree / "sub" / f"f{i}").write_bytes(b"x" * 5000)
    script = TOOL_PROBE_START + SURVEY
    args = ["size", str(tree), "inspect", str(tree / "nope"), "sample", str(tree)]
    out = subprocess.run(["sh", "-c", script, "sh", *args], capture_output=True, check=True).stdout
    head, _, sample = out.partition(b"@ sample 3\n")
    lines = head.decode().splitlines()
    at = lines.index("@ size 1")
    assert lines[at + 1].startswith("bytes ") and int(lines[at + 1].split()[1]) > 0
    assert lines[at + 2] == "files 30"
    assert lines[at + 3 : at + 6] == ["@ inspect 2", "missing", "parent ok"]
    # the python3 start was waited for only after the size and before the raw sample
    tools = lines.index("@ tools 0")
    assert tools > at + 5
    assert lines[tools:] == ["@ tools 0", f"tool python3 {shutil.which('python3')}"]
    assert sample.startswith(b"./") and len(sample) == 65536


def test_survey_without_the_probe_or_a_sample_still_ends(tmp_path):
    """No probe (the connection knows its host): no tools block; the last op answers."""
    script = "py=; " + SURVEY
    out = subprocess.run(
        ["sh", "-c", script, "sh", "inspect", str(tmp_path)], capture_output=True, check=True
    ).stdout.decode()
    assert out.splitlines()[:3] == ["@ inspect 1", "dir", "parent ok"]
    assert "@ tools" not in out


def test_survey_probe_lists_python3_after_the_ops_without_a_sample(tmp_path):
    out = subprocess.run(
        ["sh", "-c", TOOL_PROBE_START + SURVEY, "sh", "size", str(tmp_path)],
        capture_output=True,
        check=True,
    ).stdout.decode()
    lines = out.splitlines()
    assert lines.index("@ size 1") < lines.index("@ tools 0")
    assert lines[-1] == f"tool python3 {shutil.which('python3')}"
