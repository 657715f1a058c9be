"""The engine never imports Textual: the console is one client of it, the CLI another."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import difpipe_tui.core


def core_modules() -> list[str]:
    """Every module under difpipe_tui.core, subpackages and their modules included."""
    return [
        m.name for m in pkgutil.walk_packages(difpipe_tui.core.__path__, prefix="difpipe_tui.core.")
    ]


def test_the_walk_finds_every_module_file_under_core():
    root = Path(difpipe_tui.core.__file__).parent
    files = {
        ".".join(("difpipe_tui", "core", *p.relative_to(root).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for p in root.rglob("*.py")
    }
    files.discard("difpipe_tui.core")
    assert sorted(core_modules()) == sorted(files)
    assert len(files) >= 28  # the count when the walk first reached core.transfer
    assert "difpipe_tui.core.transfer.engine" in files


def test_core_imports_no_textual():
    modules = core_modules()
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "core = sorted(m for m in sys.modules if m.startswith('difpipe_tui.core.'))\n"
        "print(','.join(bad))\n"
        "print(','.join(core))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    bad, imported = out.stdout.splitlines()
    assert bad == ""
    assert set(modules) <= set(imported.split(","))


def test_headless_cli_imports_no_textual():
    code = (
        "import sys\nimport difpipe_tui.cli\n"
        "print(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_importing_asyncssh_runs_no_compiler():
    """asyncssh's liboqs lookup must not start gcc or ld (it did, twice, on every command)."""
    code = (
        "import subprocess\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError(f'process started while importing: {a!r}')\n"
        "subprocess.Popen = refuse\n"
        "import difpipe_tui.core.ssh\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_liboqs_is_found_where_the_loader_looks(tmp_path, monkeypatch):
    """The quick lookup still finds liboqs, so post-quantum key exchange stays available."""
    lib = tmp_path / "liboqs.so.5"
    lib.write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    assert difpipe_tui.core._find_library_fast("oqs") == str(lib)
    assert difpipe_tui.core._find_library_fast("liboqs") != str(lib)


def test_asyncssh_starts_without_x509_and_keeps_ssh_certificates():
    code = (
        "import sys\nimport difpipe_tui.core.ssh, asyncssh\n"
        "print('cryptography.x509' in sys.modules)\n"
        "key = asyncssh.generate_private_key('ssh-ed25519')\n"
        "cert = key.generate_user_certificate(key, 'op', principals=['op'])\n"
        "print(cert.algorithm.decode())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "ssh-ed25519-cert-v01@openssh.com"]


def test_the_library_lookup_lists_each_directory_once(tmp_path, monkeypatch):
    (tmp_path / "libnettle.so.8").write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    listed = []
    real = difpipe_tui.core.os.listdir
    monkeypatch.setattr(difpipe_tui.core.os, "listdir", lambda d: listed.append(d) or real(d))
    difpipe_tui.core._names_in.cache_clear()
    found = [difpipe_tui.core._find_library_fast(n) for n in ("oqs", "liboqs", "nettle")]
    assert found[2] == str(tmp_path / "libnettle.so.8")
    assert len(listed) == len(set(listed)) >= 1
