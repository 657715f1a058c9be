"""The ``difpipe`` program: the collector stays off while a command's modules load.

A command starts by loading ~600 modules, whose objects (classes, functions, constants) live
as long as the process. With the cyclic collector on, they cost ~90 collections, ~20 ms, of
every start, and a walk in every full collection afterwards. :func:`run` turns it off before
it imports the CLI; the CLI freezes what has loaded once the command's own modules are in
(``gc.freeze``) and turns it back on before the command runs (:func:`.cli.startup_done`).
"""

from __future__ import annotations

import gc


def run() -> None:
    gc.disable()
    from .cli import run as run_cli

    run_cli()
