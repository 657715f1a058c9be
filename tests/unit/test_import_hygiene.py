"""The engine never imports Textual: the console is one client of it, the CLI another."""

import pkgutil
import subprocess
import sys

import difpipe_tui.core


def test_core_imports_no_textual():
    modules = [
        f"difpipe_tui.core.{m.name}" for m in pkgutil.walk_packages(difpipe_tui.core.__path__)
    ]
    assert len(modules) >= 6
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


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
