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
