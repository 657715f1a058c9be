"""Where DifPipe keeps its files (XDG locations, overridable).

Precedence for the config file: an explicit path (``--config``), ``DIFPIPE_CONFIG``,
``$DIFPIPE_HOME/difpipe.toml``, ``$XDG_CONFIG_HOME/difpipe/difpipe.toml``.
The state directory (SQLite store, accepted host keys) is ``$DIFPIPE_HOME/state`` when
``DIFPIPE_HOME`` is set, else ``$XDG_STATE_HOME/difpipe``.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "difpipe"


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("DIFPIPE_CONFIG"):
        return Path(env).expanduser()
    if home := os.environ.get("DIFPIPE_HOME"):
        return Path(home).expanduser() / "difpipe.toml"
    return _xdg("XDG_CONFIG_HOME", ".config") / APP / "difpipe.toml"


def state_dir() -> Path:
    if home := os.environ.get("DIFPIPE_HOME"):
        return Path(home).expanduser() / "state"
    return _xdg("XDG_STATE_HOME", ".local/state") / APP


def state_db_path() -> Path:
    return state_dir() / "state.db"


def known_hosts_path() -> Path:
    """DifPipe's own known_hosts file, where ``accept-new`` records the keys it trusts."""
    return state_dir() / "known_hosts"
