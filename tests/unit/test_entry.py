"""The entry point loads the CLI with the collector off; the command runs with it on."""

import gc
import subprocess
import sys

from difpipe_tui import cli

PROBE = """
import gc, sys
from difpipe_tui import cli, cli_transfer

seen = {}
real = cli_transfer.COMMANDS[("copy", None)]

def load():
    seen["loading"] = gc.isenabled()
    return real.load()

def copy(args):
    seen["running"] = (gc.isenabled(), gc.get_freeze_count() > 10_000)
    print(seen)
    return 0

copy.load = lambda: (load(), copy)[1]
cli.COMMANDS[("copy", None)] = copy
sys.argv = ["difpipe", "copy", "--schema"]
from difpipe_tui.entry import run
run()
"""


def test_the_command_runs_with_the_collector_on_and_its_modules_frozen():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.stdout.strip() == "{'loading': False, 'running': (True, True)}", out.stderr


def test_startup_done_leaves_a_running_collector_alone():
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    cli.startup_done()
    assert gc.isenabled() and gc.get_freeze_count() == frozen
