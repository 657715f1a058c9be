"""Add or edit one host: a form over the ``[hosts.NAME]`` table of the config file.

The form writes what its fields say into the host's TOML table (editing starts from the
table as the config has it, so keys the form does not show are kept), and the config's own
parser checks it: an error is shown under the field its key path names, in the parser's
words. The jump field builds a chain of hops (screens/jump_chain.py). A password is never
a field: it comes from an environment variable or a command. ``enter`` or ``ctrl+s`` saves
(the file is read anew and written atomically), ``esc`` cancels. The screen dismisses with
the saved :class:`~difpipe_tui.core.config.Host`, or None.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, Select, Static

from ..core import config as cfg
from ..core.errors import DifpipeError
from ..widgets.keys import key_hint
from .jump_chain import JumpChain

# field id -> the key under [hosts.NAME] it writes ("auth.x" lives in [hosts.NAME.auth])
FIELDS: dict[str, str] = {
    "name": "",
    "address": "address",
    "port": "port",
    "user": "user",
    "role": "role",
    "jump": "jump",
    "policy": "host_key_policy",
    "keys": "auth.key_files",
    "agent": "auth.agent",
    "password-env": "auth.password_env",
    "password-command": "auth.password_command",
    "tags": "tags",
    "description": "description",
}
_BY_KEY = {key: field for field, key in FIELDS.items()}
_HOST_PART = re.compile(r'hosts\.(?:"(?:[^"\\]|\\.)*"|[A-Za-z0-9_-]+)')


def field_for(error: cfg.ConfigKeyError) -> str:
    """The form field a key path points at (``hosts.x.auth.key_files[1]`` -> ``keys``)."""
    match = _HOST_PART.match(error.key)
    if match is None:
        return "form"
    rest = re.sub(r"\[\d+\]$", "", error.key[match.end() :]).lstrip(".")
    if rest == "auth":  # password_env and password_command both set
        return "password-env"
    return _BY_KEY.get(rest, "form")


def _words(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]


def _number(text: str) -> int | str:
    """What TOML would read: digits are an integer, anything else stays text for the
    parser to refuse in its own words."""
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else text


class HostForm(ModalScreen[cfg.Host | None]):
    DEFAULT_CSS = """
    HostForm { align: center middle; }
    HostForm > #host-form {
        width: 78; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    HostForm VerticalScroll { height: auto; max-height: 100%; }
    HostForm .field-row { height: 1; }
    HostForm .field-label { width: 14; color: $text-muted; }
    HostForm .field-row > Input, HostForm .field-row > Select { width: 1fr; }
    HostForm .field-error { color: $error; padding-left: 14; }
    HostForm #e-form { padding-left: 0; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="hostform.save"),
        Binding("escape", "cancel", "Cancel", id="hostform.cancel"),
    ]

    def __init__(self, config: cfg.Config, name: str | None = None):
        super().__init__()
        self.config = config
        self.editing = name
        table = cfg.config_to_dict(config).get("hosts", {}).get(name, {}) if name else {}
        self.base: dict[str, Any] = table
        self.host = config.hosts.get(name) if name else None
        self._tried = False

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        h, d = self.host, self.config.defaults
        auth = h.auth if h else cfg.Auth()
        with Vertical(id="host-form") as box:
            box.border_title = f"Edit host {self.editing}" if self.editing else "Add host"
            save, cancel = key_hint(self, "hostform.save"), key_hint(self, "hostform.cancel")
            box.border_subtitle = f"enter/{save} save · {cancel} cancel"
            with VerticalScroll():
                yield from self._row("name", "Name", self._input("name", self.editing or ""))
                yield from self._row("address", "Address", self._input("address", h and h.address))
                port = str(h.port) if h and h.port != d.port else ""
                yield from self._row("port", "Port", self._input("port", port, f"{d.port}"))
                user_hint = f"default: {d.user}" if d.user else "default: the local user"
                yield from self._row("user", "User", self._input("user", h and h.user, user_hint))
                roles = [(r, r) for r in cfg.ROLES]
                role = h.role if h else "other"
                yield from self._row("role", "Role", self._select("role", roles, role))
                others = [n for n in self.config.hosts if n != self.editing]
                chain = JumpChain(others, self.host.jump if self.host else ())
                yield from self._row("jump", "Jump via", chain)
                policies = [
                    (f"inherit ({d.host_key_policy})", ""),
                    *((p, p) for p in cfg.HOST_KEY_POLICIES),
                ]
                policy = (h.host_key_policy if h else None) or ""
                yield from self._row(
                    "policy", "Host keys", self._select("policy", policies, policy)
                )
                keys = ", ".join(auth.key_files)
                hint = "~/.ssh/id_ed25519, ... (comma-separated)"
                yield from self._row("keys", "Key files", self._input("keys", keys, hint))
                yield from self._row(
                    "agent",
                    "Agent",
                    Checkbox("use ssh-agent", auth.agent, id="f-agent", compact=True),
                )
                yield from self._row(
                    "password-env",
                    "Password env",
                    self._input("password-env", auth.password_env, "VAR holding the password"),
                )
                yield from self._row(
                    "password-command",
                    "Password cmd",
                    self._input("password-command", auth.password_command, "pass show host"),
                )
                tags = ", ".join(h.tags) if h else ""
                yield from self._row("tags", "Tags", self._input("tags", tags, "site-a, rack-2"))
                desc = h.description if h else ""
                yield from self._row("description", "Description", self._input("description", desc))
            yield Static("", id="e-form", classes="field-error")

    def _row(self, field: str, label: str, widget) -> ComposeResult:
        with Horizontal(classes="field-row"):
            yield Label(label, classes="field-label")
            yield widget
        yield Static("", id=f"e-{field}", classes="field-error")

    def _input(self, field: str, value: str | None, placeholder: str = "") -> Input:
        return Input(value or "", placeholder=placeholder, id=f"f-{field}", compact=True)

    def _select(self, field: str, options: list[tuple[str, str]], value: str) -> Select[str]:
        return Select(options, value=value, allow_blank=False, id=f"f-{field}", compact=True)

    def on_mount(self) -> None:
        for error in self.query(".field-error"):
            error.display = False
        if self.editing:
            self.query_one("#f-name", Input).disabled = True
            self.query_one("#f-address", Input).focus()
        else:
            self.query_one("#f-name", Input).focus()

    # -- reading the fields --------------------------------------------------------------

    def _text(self, field: str) -> str:
        return self.query_one(f"#f-{field}", Input).value.strip()

    def _choice(self, field: str) -> str:
        value = self.query_one(f"#f-{field}", Select).value
        return value if isinstance(value, str) else ""

    def table(self) -> dict[str, Any]:
        """The host's TOML table as the fields say, over the one the config has."""
        data = {k: v for k, v in self.base.items() if k != "auth"}
        auth = dict(self.base.get("auth", {}))
        port = self._text("port")
        values: dict[str, Any] = {
            "address": self._text("address"),
            "port": _number(port) if port else self.config.defaults.port,
            "user": self._text("user"),
            "role": self._choice("role"),
            "jump": list(self.query_one(JumpChain).chain),
            "host_key_policy": self._choice("policy"),
            "tags": _words(self._text("tags")),
            "description": self._text("description"),
            "auth.key_files": _words(self._text("keys")),
            "auth.agent": None if self.query_one("#f-agent", Checkbox).value else False,
            "auth.password_env": self._text("password-env"),
            "auth.password_command": self._text("password-command"),
        }
        for key, value in values.items():
            target, name = (auth, key[5:]) if key.startswith("auth.") else (data, key)
            if value in ("", [], None):
                target.pop(name, None)
            else:
                target[name] = value
        if auth:
            data["auth"] = auth
        return data

    def validated(self) -> cfg.Host:
        """The host as the config's parser reads it with every other host; raises
        :class:`~difpipe_tui.core.config.ConfigKeyError` naming the key at fault."""
        name = self.editing or self._text("name")
        if not self.editing and name in self.config.hosts:
            raise cfg.ConfigKeyError(
                f"hosts.{name}", "a host with this name exists", hint="edit it, or pick a new name"
            )
        doc = cfg.config_to_dict(self.config)
        doc.setdefault("hosts", {})[name] = self.table()
        return cfg.parse_config(doc).hosts[name]

    # -- validation and saving -----------------------------------------------------------

    def check(self) -> cfg.Host | None:
        """Validate and show the error at its field; the host when the fields are valid."""
        for error in self.query(".field-error"):
            error.display = False
        try:
            return self.validated()
        except cfg.ConfigKeyError as err:
            self.show_error(err)
            return None

    def show_error(self, err: DifpipeError) -> None:
        field = field_for(err) if isinstance(err, cfg.ConfigKeyError) else "form"
        box = self.query_one(f"#e-{field}", Static)
        box.update(err.render())
        box.display = True
        if field != "form":
            widget = self.query_one(f"#f-{field}")
            widget.scroll_visible(animate=False)
            if not widget.has_focus and not widget.disabled:
                widget.focus()

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    @on(JumpChain.Changed)
    def _changed(self) -> None:
        if self._tried:  # after a refused save, errors follow the fields as they change
            self.check()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        self._tried = True
        host = self.check()
        if host is not None:
            self.run_worker(partial(self._save, host), exclusive=True, exit_on_error=False)

    async def _save(self, host: cfg.Host) -> None:
        bridge = self.app.bridge  # type: ignore[attr-defined]
        try:
            await bridge.call(bridge.save_host, host)
        except DifpipeError as err:
            self.show_error(err)
            return
        self.dismiss(host)

    def action_cancel(self) -> None:
        self.dismiss(None)
