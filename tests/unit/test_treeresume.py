"""What a resumed directory copy sends: listings, the quick check, extra entries."""

from __future__ import annotations

import os
import subprocess

from difpipe_tui.core.transfer.tarstream import tar_create_argv
from difpipe_tui.core.transfer.treeresume import (
    LIST_SCRIPT,
    Entry,
    list_local,
    parse_listing,
    plan_resume,
)


def test_parse_keeps_whole_seconds_and_odd_names():
    data = (
        b"f 10 1700000000.9999999999 a b/c d\0"
        b"d 4096 1700000001.0000000000 a b\0"
        b"f 3 1700000002.5 -x\nnew\0"
        b"garbage\0"
    )
    got = parse_listing(data)
    assert got == {
        "a b/c d": Entry("f", 10, 1700000000),
        "a b": Entry("d", 4096, 1700000001),
        "-x\nnew": Entry("f", 3, 1700000002),
    }


def test_local_listing_matches_gnu_find(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f 1").write_bytes(b"x" * 100)
    (tmp_path / "-top").write_text("t")
    os.symlink("d", tmp_path / "link")
    out = subprocess.run(
        ["sh", "-c", LIST_SCRIPT, "sh", str(tmp_path)], capture_output=True, check=True
    ).stdout
    found = parse_listing(out)
    local = list_local(str(tmp_path))
    assert set(found) == set(local) == {"d", "d/e", "d/e/f 1", "-top", "link"}
    assert local == found


def test_a_file_is_skipped_only_when_every_destination_has_it():
    src = {
        "d": Entry("d", 0, 1),
        "d/a": Entry("f", 5, 100),
        "d/b": Entry("f", 7, 100),
        "d/c": Entry("f", 9, 100),
        "l": Entry("l", 1, 100),
    }
    one = {"d": Entry("d", 0, 5), "d/a": Entry("f", 5, 100), "d/b": Entry("f", 7, 100)}
    two = {
        "d/a": Entry("f", 5, 100),
        "d/b": Entry("f", 7, 101),  # written, but tar had not set its time: not complete
        "old": Entry("f", 1, 1),
        "d/c": Entry("d", 0, 100),  # a directory where the source now has a file
    }
    tree = plan_resume(src, {"one": one, "two": two})
    assert tree.names == ["d", "d/b", "d/c", "l"]  # the source's order, directories first
    assert (tree.skipped_files, tree.skipped_bytes, tree.remaining_bytes) == (1, 5, 16)
    assert tree.extra == {"one": [], "two": ["old", "d/c"]}
    assert tree.stdin() == b"./d\0./d/b\0./d/c\0./l\0"
    assert "1 files (5 bytes) already there" in tree.note


def test_names_list_makes_tar_read_names_not_options():
    assert tar_create_argv("/x", None) == ["tar", "-C", "/x", "-cf", "-", "."]
    argv = tar_create_argv("/x", b"./-rf\0")
    assert argv[argv.index("-T") + 1] == "-" and "--null" in argv and "--no-recursion" in argv
