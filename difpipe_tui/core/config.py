"""The config file: typed models, validation, atomic load/save, and ssh_config import.

The file is TOML (see :func:`difpipe_tui.core.paths.config_path` for where it lives). Parsing
checks every key and reports the first problem as one line that starts with its key path, e.g.
``hosts.edge-pi.port: expected an integer, got "22a"``. Writes are atomic and nothing invalid is
ever written. Passwords are never stored: a host names an environment variable
(``password_env``) or a command (``password_command``) that supplies one.

One table of fields per section drives both the parser and :func:`config_schema`, so the JSON
Schema cannot drift from what the parser accepts.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import getpass
import json
import math
import os
import re
import shlex
import stat
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from . import paths
from .errors import ConfigError

__all__ = [
    "HOST_KEY_POLICIES",
    "HOST_NAME_PATTERN",
    "ROLES",
    "TRANSPORTS",
    "Auth",
    "Config",
    "ConfigKeyError",
    "Defaults",
    "Host",
    "ResolvedHost",
    "UiSettings",
    "config_schema",
    "config_to_dict",
    "import_ssh_config",
    "load_config",
    "merge_imported",
    "parse_config",
    "remove_host",
    "save_config",
    "upsert_host",
    "upsert_hosts",
]

ROLES = ("edge", "cloud", "storage", "bastion", "other")
HOST_KEY_POLICIES = ("strict", "accept-new")
TRANSPORTS = ("auto", "asyncssh", "openssh")
HOST_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

_ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A host name or IPv4 address, or an IPv6 address (two or more colons); never a leading "-".
_ADDRESS_PATTERN = (
    r"^(?!-)(?:[A-Za-z0-9._%-]+|[A-Za-z0-9._%-]*:[A-Za-z0-9._%-]*:[A-Za-z0-9._:%-]*)$"
)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_CLEAR_PASSWORD_KEYS = frozenset({"password", "passwd", "pass", "passphrase"})
_NOT_IN_CLEAR = (
    "passwords are not stored in the config in clear; "
    'use password_env = "VAR" or password_command = "..."'
)
_HOST_NAME_HINT = 'use letters, digits, "-", "_" and ".", starting with a letter or digit'


class ConfigKeyError(ConfigError):
    """A problem at one key path of the config file.

    The message starts with the key path (``hosts.edge-pi.port: ...``), which already names the
    host, so no ``host:`` prefix is added. ``key`` is the path; ``path`` the file, when known.
    """

    def __init__(self, key: str, message: str, *, host: str | None = None, hint: str | None = None):
        self.key = key
        self.path: Path | None = None
        super().__init__(f"{key}: {message}", host=host, hint=hint)

    def render(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["key"] = self.key
        data["path"] = str(self.path) if self.path else None
        return data


# --------------------------------------------------------------------------- models


def _as_tuples(obj: object, *names: str) -> None:
    """Turn list arguments into tuples so frozen models stay hashable and comparable."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, list):
            object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True)
class Auth:
    """How to log in to a host. Secrets are never stored here, only where to find them."""

    key_files: tuple[str, ...] = ()
    certificate: str | None = None
    agent: bool = True
    agent_path: str | None = None
    password_env: str | None = None
    password_command: str | None = None

    def __post_init__(self) -> None:
        _as_tuples(self, "key_files")

    def methods(self) -> list[str]:
        """Names of the configured login methods, e.g. ``["key", "agent", "password_env"]``."""
        names = []
        if self.key_files:
            names.append("key")
        if self.certificate:
            names.append("certificate")
        if self.agent:
            names.append("agent")
        if self.password_env:
            names.append("password_env")
        if self.password_command:
            names.append("password_command")
        return names


@dataclass(frozen=True)
class Host:
    """One ``[hosts.NAME]`` table. ``None`` values inherit from :class:`Defaults`."""

    name: str
    address: str
    port: int = 22
    user: str | None = None
    role: str = "other"
    tags: tuple[str, ...] = ()
    jump: tuple[str, ...] = ()
    auth: Auth = Auth()
    host_key_policy: str | None = None
    known_hosts: tuple[str, ...] | None = None
    connect_timeout: float | None = None
    keepalive_interval: float | None = None
    keepalive_count_max: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        _as_tuples(self, "tags", "jump", "known_hosts")


@dataclass(frozen=True)
class Defaults:
    """The ``[defaults]`` table: values every host inherits unless it sets its own."""

    user: str | None = None
    port: int = 22
    host_key_policy: str = "strict"
    known_hosts: tuple[str, ...] = ("~/.ssh/known_hosts",)
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    transport: str = "auto"

    def __post_init__(self) -> None:
        _as_tuples(self, "known_hosts")


@dataclass(frozen=True)
class UiSettings:
    """The ``[ui]`` table. The console validates the theme and key names itself."""

    theme: str = "dark"
    keymap: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedHost:
    """A host with every inherited value filled in and ``~`` expanded: what SSH connects with.

    ``known_hosts`` lists the configured files followed by DifPipe's own known_hosts file,
    where ``accept-new`` records the keys it trusts.
    """

    name: str
    address: str
    port: int
    user: str
    role: str
    tags: tuple[str, ...]
    jump: tuple[str, ...]
    auth: Auth
    host_key_policy: str
    known_hosts: tuple[str, ...]
    connect_timeout: float
    keepalive_interval: float
    keepalive_count_max: int


@dataclass(frozen=True)
class Config:
    """The whole file. ``hosts`` keeps the file's order; treat the mappings as read-only."""

    hosts: Mapping[str, Host] = field(default_factory=dict)
    defaults: Defaults = Defaults()
    ui: UiSettings = field(default_factory=UiSettings)
    path: Path | None = None

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            where = f" in {self.path}" if self.path else ""
            known = _known(list(self.hosts), none="no hosts are configured")
            raise ConfigError(f"no such host{where} ({known})", host=name) from None

    def resolve(self, name: str) -> ResolvedHost:
        host = self.host(name)
        d = self.defaults
        known = host.known_hosts if host.known_hosts is not None else d.known_hosts
        known_files = [_expand(p) for p in known] + [str(paths.known_hosts_path())]
        auth = host.auth
        auth = replace(
            auth,
            key_files=tuple(_expand(p) for p in auth.key_files),
            certificate=_expand(auth.certificate) if auth.certificate else None,
            agent_path=_expand(auth.agent_path) if auth.agent_path else None,
        )
        return ResolvedHost(
            name=host.name,
            address=host.address,
            port=host.port,
            user=host.user or d.user or _local_user(host.name),
            role=host.role,
            tags=host.tags,
            jump=host.jump,
            auth=auth,
            host_key_policy=_pick(host.host_key_policy, d.host_key_policy),
            known_hosts=tuple(dict.fromkeys(known_files)),
            connect_timeout=float(_pick(host.connect_timeout, d.connect_timeout)),
            keepalive_interval=float(_pick(host.keepalive_interval, d.keepalive_interval)),
            keepalive_count_max=_pick(host.keepalive_count_max, d.keepalive_count_max),
        )

    def jump_chain(self, name: str) -> list[ResolvedHost]:
        """The resolved jump hosts of ``name``, outermost first.

        The chain is exactly the host's ``jump`` list; the jump hosts' own lists are not followed.
        """
        return [self.resolve(hop) for hop in self.host(name).jump]


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _expand(path: str) -> str:
    return os.path.expanduser(path)


def _local_user(host: str) -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise ConfigKeyError(
            _sub(_sub("hosts", host), "user"),
            "not set, and the local user name is unknown",
            host=host,
            hint='set user = "..." on the host or in [defaults]',
        ) from None


# --------------------------------------------------------------------------- field tables


@dataclass(frozen=True)
class _Field:
    """One key of a table: its TOML type, limits and documentation."""

    kind: str  # string | integer | number | boolean | strings | table
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    above: float | None = None  # exclusive minimum
    maximum: float | None = None
    pattern: str | None = None
    pattern_doc: str = ""
    allow_empty: bool = False
    hint: Callable[[str], str | None] | None = None


def _address_hint(value: str) -> str | None:
    if "@" in value:
        user = value.rpartition("@")[0]
        return f"put the user name in user = {_show(user)}"
    host, colon, port = value.rpartition(":")
    if colon and host.count(":") == 0 and port.isdigit():
        return f"put the port in port = {port}"
    return None


_PORT = _Field("integer", "SSH port.", minimum=1, maximum=65535)
_HOST_KEY_POLICY = _Field(
    "string",
    'How unknown host keys are handled: "strict" refuses hosts not in known_hosts; '
    '"accept-new" trusts a new host\'s key on first contact and records it, but still '
    "refuses a changed key.",
    choices=HOST_KEY_POLICIES,
)
_KNOWN_HOSTS = _Field(
    "strings",
    "OpenSSH known_hosts files to read host keys from (~ is expanded). DifPipe's own "
    "known_hosts file is always read as well.",
)
_CONNECT_TIMEOUT = _Field(
    "number", "Seconds to wait for the connection and login to complete.", above=0
)
_KEEPALIVE_INTERVAL = _Field(
    "number", "Seconds between SSH keepalive messages; 0 turns them off.", minimum=0
)
_KEEPALIVE_COUNT_MAX = _Field(
    "integer", "Unanswered keepalives after which the link counts as lost.", minimum=1
)

_DEFAULTS_FIELDS: dict[str, _Field] = {
    "user": _Field("string", "Login user for hosts that set none (else the local user)."),
    "port": _Field("integer", "SSH port for hosts that set none.", minimum=1, maximum=65535),
    "host_key_policy": _HOST_KEY_POLICY,
    "known_hosts": _KNOWN_HOSTS,
    "connect_timeout": _CONNECT_TIMEOUT,
    "keepalive_interval": _KEEPALIVE_INTERVAL,
    "keepalive_count_max": _KEEPALIVE_COUNT_MAX,
    "transport": _Field(
        "string",
        "How a copy streams a file to or from a host (a job's transport overrides it): "
        '"openssh" runs one ssh client process per remote end, so the two ends of a relay '
        'use two cores; "asyncssh" streams inside DifPipe\'s own process; "auto" is openssh '
        "for a file of 256 MiB or more (or of unknown size) when the ssh client is installed "
        "and can express the host's settings, else asyncssh. "
        "Directories (tar), SFTP and --parallel ranges always use asyncssh.",
        choices=TRANSPORTS,
    ),
}

_AUTH_FIELDS: dict[str, _Field] = {
    "key_files": _Field("strings", "Private key files to offer, in order (~ is expanded)."),
    "certificate": _Field("string", "OpenSSH certificate for the key (~ is expanded)."),
    "agent": _Field("boolean", "Offer the keys held by ssh-agent."),
    "agent_path": _Field(
        "string", "ssh-agent socket to use instead of $SSH_AUTH_SOCK (~ is expanded)."
    ),
    "password_env": _Field(
        "string",
        "Name of an environment variable that holds the password.",
        pattern=_ENV_NAME_PATTERN,
        pattern_doc="an environment variable name",
    ),
    "password_command": _Field(
        "string", "A command whose first line of output is the password (run with sh -c)."
    ),
}

_HOST_FIELDS: dict[str, _Field] = {
    "address": _Field(
        "string",
        "Host name or IP address to connect to (required).",
        pattern=_ADDRESS_PATTERN,
        pattern_doc="a host name or IP address",
        hint=_address_hint,
    ),
    "port": _Field("integer", "SSH port (default: defaults.port).", minimum=1, maximum=65535),
    "user": _Field("string", "Login user (default: defaults.user, else the local user)."),
    "role": _Field("string", "What the host is for.", choices=ROLES),
    "tags": _Field("strings", "Free labels for filtering and grouping."),
    "jump": _Field(
        "strings",
        "Jump hosts by name, outermost first: connect to the first, through it to the next, "
        "and so on to this host. The jump hosts' own jump lists are not followed.",
    ),
    "host_key_policy": replace(_HOST_KEY_POLICY, doc="Overrides defaults.host_key_policy."),
    "known_hosts": replace(_KNOWN_HOSTS, doc="Overrides defaults.known_hosts."),
    "connect_timeout": replace(_CONNECT_TIMEOUT, doc="Overrides defaults.connect_timeout."),
    "keepalive_interval": replace(
        _KEEPALIVE_INTERVAL, doc="Overrides defaults.keepalive_interval."
    ),
    "keepalive_count_max": replace(
        _KEEPALIVE_COUNT_MAX, doc="Overrides defaults.keepalive_count_max."
    ),
    "description": _Field("string", "Free text shown in the console.", allow_empty=True),
    "auth": _Field("table", "How to log in."),
}

_UI_FIELDS: dict[str, _Field] = {
    "theme": _Field("string", "Console theme name."),
    "keymap": _Field("table", 'Key bindings: binding id -> key, e.g. "screen.hosts" = "h".'),
}

_TOP_FIELDS: dict[str, _Field] = {
    "defaults": _Field("table", "Values every host inherits unless it sets its own."),
    "ui": _Field("table", "Console settings."),
    "hosts": _Field("table", "SSH hosts by name."),
}

_KEY_STRING = _Field("string", "")


# --------------------------------------------------------------------------- validation


def _sub(where: str, part: str | int) -> str:
    """Append a key or list index to a key path, quoting keys the way TOML would."""
    if isinstance(part, int):
        return f"{where}[{part}]"
    key = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    """A parsed TOML value written back as TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_sub('', k)} = {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def _known(names: list[str], *, none: str) -> str:
    if not names:
        return none
    shown = ", ".join(names[:10])
    more = f", and {len(names) - 10} more" if len(names) > 10 else ""
    return f"known: {shown}{more}"


def _limits(spec: _Field) -> str:
    noun = "an integer" if spec.kind == "integer" else "a number"
    if spec.minimum is not None and spec.maximum is not None:
        return f"{noun} from {spec.minimum:g} to {spec.maximum:g}"
    if spec.above is not None:
        return f"{noun} > {spec.above:g}"
    if spec.minimum is not None:
        return f"{noun} >= {spec.minimum:g}"
    return noun


def _check_value(value: Any, spec: _Field, where: str, host: str | None) -> Any:
    """Check one value against its field; return it as the model stores it."""

    def bad(expected: str, hint: str | None = None) -> ConfigKeyError:
        return ConfigKeyError(
            where, f"expected {expected}, got {_show(value)}", host=host, hint=hint
        )

    kind = spec.kind
    if kind == "strings":
        if not isinstance(value, list):
            raise bad("a list of strings")
        item_spec = replace(spec, kind="string")
        return tuple(
            _check_value(item, item_spec, _sub(where, i), host) for i, item in enumerate(value)
        )
    if kind == "string":
        if not isinstance(value, str):
            raise bad("a string")
        if spec.choices and value not in spec.choices:
            raise bad("one of " + ", ".join(spec.choices))
        if not value and not spec.allow_empty:
            raise bad("a non-empty string")
        if spec.pattern and not re.fullmatch(spec.pattern, value):
            raise bad(spec.pattern_doc, spec.hint(value) if spec.hint else None)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
    elif kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise bad("a finite number")
    else:
        raise AssertionError(f"unexpected field kind {kind!r}")
    too_low = (spec.minimum is not None and value < spec.minimum) or (
        spec.above is not None and value <= spec.above
    )
    if too_low or (spec.maximum is not None and value > spec.maximum):
        raise bad(_limits(spec))
    return float(value) if kind == "number" else value


def _expect_table(value: Any, where: str, host: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigKeyError(where, f"expected a table, got {_show(value)}", host=host)
    return value


def _refuse_unknown(
    table: Mapping[str, Any], fields_: Mapping[str, _Field], where: str, host: str | None
) -> None:
    for key in table:
        if key not in fields_:
            close = difflib.get_close_matches(key, list(fields_), n=1)
            hint = f'did you mean "{close[0]}"?' if close else "known keys: " + ", ".join(fields_)
            raise ConfigKeyError(_sub(where, key), "unknown key", host=host, hint=hint)


def _read_table(
    value: Any, fields_: Mapping[str, _Field], where: str, host: str | None
) -> dict[str, Any]:
    """Check a table's keys and scalar values; sub-tables are left to the caller."""
    table = _expect_table(value, where, host)
    _refuse_unknown(table, fields_, where, host)
    return {
        key: _check_value(item, fields_[key], _sub(where, key), host)
        for key, item in table.items()
        if fields_[key].kind != "table"
    }


def _refuse_clear_passwords(data: Mapping[str, Any]) -> None:
    """Refuse password-like keys anywhere they could be meant, before any other check."""
    tables: list[tuple[str, Mapping[str, Any], str | None]] = [("", data, None)]
    if isinstance(data.get("defaults"), dict):
        tables.append(("defaults", data["defaults"], None))
    if isinstance(data.get("hosts"), dict):
        for name, raw in data["hosts"].items():
            if isinstance(raw, dict):
                where = _sub("hosts", name)
                tables.append((where, raw, name))
                if isinstance(raw.get("auth"), dict):
                    tables.append((_sub(where, "auth"), raw["auth"], name))
    for where, table, host in tables:
        for key in table:
            if key.lower() in _CLEAR_PASSWORD_KEYS:
                raise ConfigKeyError(
                    _sub(where, key),
                    _NOT_IN_CLEAR,
                    host=host,
                    hint="or an SSH key / ssh-agent",
                )


def _parse_defaults(value: Any) -> Defaults:
    return Defaults(**_read_table(value, _DEFAULTS_FIELDS, "defaults", None))


def _parse_ui(value: Any) -> UiSettings:
    values = _read_table(value, _UI_FIELDS, "ui", None)
    keymap_raw = _expect_table(value.get("keymap", {}), "ui.keymap", None)
    keymap = {
        key: _check_value(item, _KEY_STRING, _sub("ui.keymap", key), None)
        for key, item in keymap_raw.items()
    }
    return UiSettings(keymap=keymap, **values)


def _parse_host(name: str, value: Any, defaults: Defaults) -> Host:
    where = _sub("hosts", name)
    if not re.fullmatch(HOST_NAME_PATTERN, name):
        raise ConfigKeyError(where, "invalid host name", host=name, hint=_HOST_NAME_HINT)
    values = _read_table(value, _HOST_FIELDS, where, name)
    if "address" not in values:
        raise ConfigKeyError(_sub(where, "address"), "required", host=name)
    auth_where = _sub(where, "auth")
    auth_values = _read_table(value.get("auth", {}), _AUTH_FIELDS, auth_where, name)
    if "password_env" in auth_values and "password_command" in auth_values:
        raise ConfigKeyError(
            auth_where, "password_env and password_command are both set", host=name, hint="keep one"
        )
    values.setdefault("port", defaults.port)
    return Host(name=name, auth=Auth(**auth_values), **values)


def _check_jumps(hosts: Mapping[str, Host]) -> None:
    for name, host in hosts.items():
        seen: set[str] = set()
        for i, hop in enumerate(host.jump):
            where = _sub(_sub(_sub("hosts", name), "jump"), i)
            if hop == name:
                raise ConfigKeyError(where, "a host cannot jump through itself", host=name)
            if hop not in hosts:
                others = _known(
                    [n for n in hosts if n != name], none="no other hosts are configured"
                )
                raise ConfigKeyError(where, f"no host named {_show(hop)} ({others})", host=name)
            if hop in seen:
                raise ConfigKeyError(where, f"{_show(hop)} is already in the chain", host=name)
            seen.add(hop)


def parse_config(data: Mapping[str, Any], *, path: Path | None = None) -> Config:
    """Validate parsed TOML and build a :class:`Config`; raise :class:`ConfigKeyError`."""
    _refuse_clear_passwords(data)
    _refuse_unknown(data, _TOP_FIELDS, "", None)
    defaults = _parse_defaults(data.get("defaults", {}))
    ui = _parse_ui(data.get("ui", {}))
    hosts_table = _expect_table(data.get("hosts", {}), "hosts", None)
    hosts = {name: _parse_host(name, raw, defaults) for name, raw in hosts_table.items()}
    _check_jumps(hosts)
    return Config(hosts=hosts, defaults=defaults, ui=ui, path=path)


# --------------------------------------------------------------------------- files


def _toml_error(path: Path, err: tomllib.TOMLDecodeError) -> ConfigError:
    text = str(err)
    match = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", text, re.S)
    where, reason = (match.group(2), match.group(1)) if match else ("", text)
    reason = reason[:1].lower() + reason[1:]
    return ConfigError(
        f"{path}: invalid TOML at {where}: {reason}" if where else f"{path}: {reason}"
    )


def _read_toml(path: Path, *, missing_ok: bool) -> dict[str, Any] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config: {err.strerror or err}") from err
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except tomllib.TOMLDecodeError as err:
        raise _toml_error(path, err) from None


@contextlib.contextmanager
def _in_file(path: Path) -> Iterator[None]:
    """Record ``path`` on the key errors raised inside."""
    try:
        yield
    except ConfigKeyError as err:
        err.path = path
        raise


def _parse_file(data: Mapping[str, Any], path: Path) -> Config:
    with _in_file(path):
        return parse_config(data, path=path)


def load_config(path: Path | str | None = None, *, missing_ok: bool = True) -> Config:
    """Load and validate the config file (default: :func:`paths.config_path`).

    A missing file gives an empty config (with ``path`` set) when ``missing_ok``.
    """
    target = paths.config_path(path)
    data = _read_toml(target, missing_ok=missing_ok)
    if data is None:
        return Config(path=target)
    return _parse_file(data, target)


def _plain(obj: Any, keys: Iterable[str], baseline: Any) -> dict[str, Any]:
    """The values of ``obj`` that differ from ``baseline``, as TOML-ready values."""
    out: dict[str, Any] = {}
    for key in keys:
        value = getattr(obj, key)
        if value is None or value == getattr(baseline, key):
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _host_to_dict(host: Host, defaults: Defaults) -> dict[str, Any]:
    baseline = Host(name=host.name, address=host.address, port=defaults.port)
    keys = [k for k in _HOST_FIELDS if k not in ("address", "auth")]
    data = {"address": host.address, **_plain(host, keys, baseline)}
    auth = _plain(host.auth, _AUTH_FIELDS, Auth())
    if auth:
        data["auth"] = auth
    return data


def config_to_dict(config: Config) -> dict[str, Any]:
    """The TOML document for ``config``; values equal to the built-in defaults are left out."""
    data: dict[str, Any] = {}
    defaults = _plain(config.defaults, _DEFAULTS_FIELDS, Defaults())
    if defaults:
        data["defaults"] = defaults
    ui = _plain(config.ui, ["theme"], UiSettings())
    if config.ui.keymap:
        ui["keymap"] = dict(config.ui.keymap)
    if ui:
        data["ui"] = ui
    if config.hosts:
        data["hosts"] = {h.name: _host_to_dict(h, config.defaults) for h in config.hosts.values()}
    return data


def _write_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as TOML to ``path`` via a temp file, fsync and rename.

    A symlinked config is written through, not replaced. The file keeps its mode (new files
    get 0600); a missing directory is created with mode 0700.
    """
    target = Path(os.path.realpath(path))
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = 0o600
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), mode)
                tomli_w.dump(dict(data), fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as err:
        raise ConfigError(f"{path}: cannot write the config: {err.strerror or err}") from err


def save_config(config: Config, path: Path | str | None = None) -> Path:
    """Write ``config`` atomically to ``path`` (default: ``config.path``, else the usual place).

    The whole file is rewritten from the model, so comments are not kept; to change one host
    and keep everything else as the user wrote it, use :func:`upsert_host`.
    """
    target = paths.config_path(path or config.path)
    data = config_to_dict(config)
    _parse_file(data, target)
    _write_atomic(target, data)
    return target


def upsert_hosts(hosts: Iterable[Host], path: Path | str | None = None) -> Config:
    """Add or replace the ``[hosts.NAME]`` tables of ``hosts`` in one atomic write.

    Every other table keeps the values the user wrote; the result is validated as a whole
    before anything is written.
    """
    target = paths.config_path(path)
    data = _read_toml(target, missing_ok=True) or {}
    with _in_file(target):
        _refuse_clear_passwords(data)
        table = _expect_table(data.setdefault("hosts", {}), "hosts", None)
        defaults = _parse_defaults(data.get("defaults", {}))
    for host in hosts:
        table[host.name] = _host_to_dict(host, defaults)
    config = _parse_file(data, target)
    _write_atomic(target, data)
    return config


def upsert_host(host: Host, path: Path | str | None = None) -> Config:
    """Add or replace one host; see :func:`upsert_hosts`."""
    return upsert_hosts([host], path)


def remove_host(name: str, path: Path | str | None = None) -> Config:
    """Remove one host; refused while another host jumps through it."""
    target = paths.config_path(path)
    data = _read_toml(target, missing_ok=True) or {}
    config = _parse_file(data, target)
    config.host(name)
    users = [other for other, host in config.hosts.items() if name in host.jump]
    if users:
        raise ConfigKeyError(
            _sub("hosts", name),
            f"cannot remove: {', '.join(users)} {'jumps' if len(users) == 1 else 'jump'} "
            "through it",
            host=name,
            hint="remove it from those jump lists first",
        )
    del data["hosts"][name]
    config = _parse_file(data, target)
    _write_atomic(target, data)
    return config


def merge_imported(config: Config, hosts: Iterable[Host]) -> tuple[list[str], list[str]]:
    """Split imported host names into those to add and those ``config`` already has."""
    added: list[str] = []
    existing: list[str] = []
    for host in hosts:
        (existing if host.name in config.hosts else added).append(host.name)
    return added, existing


# --------------------------------------------------------------------------- JSON Schema


def _schema_for(spec: _Field) -> dict[str, Any]:
    if spec.kind == "strings":
        return {"type": "array", "items": _schema_for(replace(spec, kind="string", doc=""))}
    out: dict[str, Any] = {"type": spec.kind}
    if spec.kind == "string":
        if spec.choices:
            out["enum"] = list(spec.choices)
        elif not spec.allow_empty:
            out["minLength"] = 1
        if spec.pattern:
            out["pattern"] = spec.pattern
    if spec.minimum is not None:
        out["minimum"] = spec.minimum
    if spec.above is not None:
        out["exclusiveMinimum"] = spec.above
    if spec.maximum is not None:
        out["maximum"] = spec.maximum
    return out


def _schema_table(
    fields_: Mapping[str, _Field], model: type, doc: str, *, no_default: tuple[str, ...] = ()
) -> dict[str, Any]:
    defaults = {f.name: f.default for f in fields(model)}
    props: dict[str, Any] = {}
    for key, spec in fields_.items():
        if spec.kind == "table":
            props[key] = {"$ref": f"#/$defs/{key}", "description": spec.doc}
            continue
        props[key] = {"description": spec.doc, **_schema_for(spec)}
        default = defaults.get(key)
        if key not in no_default and default not in (None, MISSING):
            props[key]["default"] = list(default) if isinstance(default, tuple) else default
    return {
        "type": "object",
        "description": doc,
        "additionalProperties": False,
        "properties": props,
    }


def config_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the config file, for editors and agents."""
    host = _schema_table(_HOST_FIELDS, Host, "One SSH host.", no_default=("port",))
    host["required"] = ["address"]
    auth = _schema_table(
        _AUTH_FIELDS,
        Auth,
        "How to log in. Passwords are never stored in the file: name an environment variable "
        "or a command that prints one.",
    )
    auth["not"] = {"required": ["password_env", "password_command"]}
    ui = _schema_table(_UI_FIELDS, UiSettings, "Console settings.")
    ui["properties"]["keymap"] = {
        "type": "object",
        "description": _UI_FIELDS["keymap"].doc,
        "additionalProperties": {"type": "string", "minLength": 1},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "DifPipe configuration (difpipe.toml)",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "defaults": {"$ref": "#/$defs/defaults"},
            "ui": {"$ref": "#/$defs/ui"},
            "hosts": {
                "type": "object",
                "description": _TOP_FIELDS["hosts"].doc,
                "propertyNames": {"pattern": HOST_NAME_PATTERN},
                "additionalProperties": {"$ref": "#/$defs/host"},
            },
        },
        "$defs": {
            "defaults": _schema_table(_DEFAULTS_FIELDS, Defaults, _TOP_FIELDS["defaults"].doc),
            "ui": ui,
            "host": host,
            "auth": auth,
        },
    }


# --------------------------------------------------------------------------- ssh_config import

_SSH_LINE = re.compile(r"([A-Za-z][A-Za-z0-9]*)(?:\s*=\s*|\s+)(.*)")
_SSH_WILDCARD = re.compile(r"[*?!]")
_SSH_MULTI = ("identityfile", "certificatefile")


@dataclass
class _SshHost:
    name: str
    options: dict[str, tuple[list[str], str]] = field(default_factory=dict)
    multi: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def first(self, keyword: str) -> tuple[str, str] | None:
        entry = self.options.get(keyword)
        return (entry[0][0], entry[1]) if entry else None


def _ssh_tokens(value: str, tokens: Mapping[str, str]) -> str:
    """Expand OpenSSH ``%`` tokens that have a meaning here; leave the others as written."""
    return re.sub(r"%(.)", lambda m: tokens.get(m.group(1), m.group(0)), value)


def _ssh_int(value: str, lo: int, hi: int | None = None) -> int | None:
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= lo and (hi is None or number <= hi) else None


def _jump_spec(spec: str) -> tuple[str | None, str, int | None] | None:
    """Split ``[ssh://][user@]host[:port]`` into its parts; ``None`` when malformed."""
    rest = spec.removeprefix("ssh://")
    user, _, hostport = rest.rpartition("@")
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
    else:
        host, port_text = hostport, ""
    port = _ssh_int(port_text, 1, 65535) if port_text else None
    if not host or (port_text and port is None):
        return None
    return user or None, host, port


def _name_for(address: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", address)
    name = re.sub(r"^[^A-Za-z0-9]+", "", name)
    return name or "jump"


def _parse_ssh_config(text: str, source: str, messages: list[str]) -> dict[str, _SshHost]:
    """Collect the non-wildcard Host blocks, first value winning as in OpenSSH."""
    blocks: dict[str, _SshHost] = {}
    aliases: dict[str, str] = {}
    current: _SshHost | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        where = f"{source}:{lineno}"
        match = _SSH_LINE.fullmatch(line)
        if not line or line.startswith("#") or not match:
            continue
        keyword = match.group(1).lower()
        try:
            args = shlex.split(match.group(2), comments=True)
        except ValueError:
            messages.append(f"{where}: unbalanced quotes; line skipped")
            continue
        if not args:
            continue
        if keyword == "host":
            wild = [a for a in args if _SSH_WILDCARD.search(a)]
            names = [a for a in args if not _SSH_WILDCARD.search(a)]
            if wild:
                shown = " ".join(wild)
                messages.append(
                    f"{where}: skipped Host '{shown}': wildcard patterns are not imported"
                )
            bad = [a for a in names if not re.fullmatch(HOST_NAME_PATTERN, a)]
            for alias in bad:
                messages.append(f"{where}: skipped Host '{alias}': not a valid host name")
            names = [a for a in names if a not in bad]
            current = None
            if names:
                name = aliases.get(names[0], names[0])
                current = blocks.setdefault(name, _SshHost(name))
                for alias in names:
                    aliases.setdefault(alias, name)
                if len(names) > 1:
                    others = ", ".join(names[1:])
                    messages.append(
                        f'{where}: imported Host {" ".join(names)} as "{name}" '
                        f"(other names: {others})"
                    )
        elif keyword == "match":
            messages.append(f"{where}: skipped Match block: Match is not imported")
            current = None
        elif keyword == "include":
            messages.append(f"{where}: Include ignored; import {' '.join(args)} separately")
        elif current is not None:
            if keyword in _SSH_MULTI:
                current.multi.setdefault(keyword, []).append((args[0], where))
            else:
                current.options.setdefault(keyword, (args, where))
    for alias, name in aliases.items():
        if alias != name:
            blocks.setdefault(alias, blocks[name])
    return blocks


def _ssh_host_values(block: _SshHost, messages: list[str]) -> dict[str, Any]:
    """Map one Host block's options to :class:`Host` keyword arguments (jump excluded)."""
    values: dict[str, Any] = {}
    auth: dict[str, Any] = {}
    hostname = block.first("hostname")
    address = hostname[0] if hostname else block.name
    address = _ssh_tokens(address, {"h": block.name, "%": "%"})
    values["address"] = address
    if user := block.first("user"):
        values["user"] = user[0]
    if port := block.first("port"):
        number = _ssh_int(port[0], 1, 65535)
        if number is None:
            messages.append(f"{port[1]}: Port {port[0]!r} is not a port number; ignored")
        else:
            values["port"] = number
    tokens = {
        "%": "%",
        "d": "~",
        "h": address,
        "n": block.name,
        "p": str(values.get("port", 22)),
        "r": values.get("user", "%r"),
    }
    key_files = [
        _ssh_tokens(path, tokens)
        for path, _ in block.multi.get("identityfile", [])
        if path.lower() != "none"
    ]
    if key_files:
        auth["key_files"] = tuple(dict.fromkeys(key_files))
    certs = block.multi.get("certificatefile", [])
    if certs:
        auth["certificate"] = _ssh_tokens(certs[0][0], tokens)
        if len(certs) > 1:
            messages.append(f"{certs[1][1]}: only the first CertificateFile is imported")
    if agent := block.first("identityagent"):
        if agent[0].lower() == "none":
            auth["agent"] = False
        elif agent[0] not in ("SSH_AUTH_SOCK", "$SSH_AUTH_SOCK"):
            auth["agent_path"] = _ssh_tokens(agent[0], tokens)
    if checking := block.first("stricthostkeychecking"):
        value = checking[0].lower()
        if value == "accept-new":
            values["host_key_policy"] = "accept-new"
        elif value == "yes":
            values["host_key_policy"] = "strict"
        elif value in ("no", "off"):
            messages.append(
                f"{checking[1]}: StrictHostKeyChecking {checking[0]} is not imported: "
                "DifPipe always checks host keys"
            )
    if entry := block.options.get("userknownhostsfile"):
        files = [f for f in entry[0] if f != "/dev/null"]
        if len(files) < len(entry[0]):
            messages.append(f"{entry[1]}: UserKnownHostsFile /dev/null is not imported")
        if files:
            values["known_hosts"] = tuple(_ssh_tokens(f, tokens) for f in files)
    for keyword, key, lo, as_float in (
        ("ConnectTimeout", "connect_timeout", 1, True),
        ("ServerAliveInterval", "keepalive_interval", 0, True),
        ("ServerAliveCountMax", "keepalive_count_max", 1, False),
    ):
        if option := block.first(keyword.lower()):
            number = _ssh_int(option[0], lo)
            if number is None:
                messages.append(f"{option[1]}: {keyword} {option[0]!r} is not valid; ignored")
            else:
                values[key] = float(number) if as_float else number
    if proxy := block.options.get("proxycommand"):
        messages.append(f"{proxy[1]}: ProxyCommand is not imported; use ProxyJump")
    if auth:
        values["auth"] = Auth(**auth)
    return values


def import_ssh_config(text: str, *, source: str = "ssh_config") -> tuple[list[Host], list[str]]:
    """Turn OpenSSH client config text into hosts; return them and messages for the user.

    Each non-wildcard ``Host`` block becomes a host named after its first alias (the other
    aliases refer to it). ProxyJump chains are flattened into ``jump``: a jump host reached
    through its own ProxyJump brings its chain along, and a ``user@host:port`` hop that is not
    an imported alias becomes a host of its own. Wildcard blocks, ``Match`` and ``Include``
    are skipped with a message. Nothing is written.
    """
    messages: list[str] = []
    blocks = _parse_ssh_config(text, source, messages)
    names = list(dict.fromkeys(b.name for b in blocks.values()))
    values = {name: _ssh_host_values(blocks[name], messages) for name in names}

    created: dict[tuple[str | None, str, int | None], str] = {}
    created_hosts: list[Host] = []

    def hop_name(spec: str, where: str) -> str | None:
        parts = _jump_spec(spec)
        if parts is None:
            messages.append(f"{where}: ProxyJump {spec!r} is not understood; jump not imported")
            return None
        user, address, port = parts
        alias = blocks[address].name if address in blocks else None
        if alias is not None:
            own = values[alias]
            if (user is None or user == own.get("user")) and port in (None, own.get("port", 22)):
                return alias
        if (user, address, port) not in created:
            settings = dict(values[alias]) if alias else {"address": address}
            if user:
                settings["user"] = user
            if port:
                settings["port"] = port
            taken = set(blocks) | set(created.values())
            base = _name_for(address if user is None else f"{user}-{address}")
            name, n = base, 2
            while name in taken:
                name, n = f"{base}-{n}", n + 1
            created[(user, address, port)] = name
            created_hosts.append(
                Host(
                    name=name,
                    role="bastion",
                    description=f"ProxyJump {spec} in {source}",
                    **settings,
                )
            )
            messages.append(f'{where}: added host "{name}" for ProxyJump {spec}')
        return created[(user, address, port)]

    direct: dict[str, list[str]] = {}
    for name in names:
        entry = blocks[name].options.get("proxyjump")
        if not entry or entry[0][0].lower() == "none":
            continue
        hops = [hop_name(spec.strip(), entry[1]) for spec in entry[0][0].split(",")]
        if None not in hops:
            direct[name] = [h for h in hops if h is not None]

    def chain(name: str, visiting: tuple[str, ...]) -> list[str] | None:
        """The flattened chain: the first hop brings its own chain along, as ssh -J does."""
        hops = direct.get(name, [])
        if not hops:
            return []
        if name in visiting:
            return None
        head = chain(hops[0], (*visiting, name))
        return None if head is None else head + hops

    jumpers: set[str] = set()
    for name in names:
        hops = chain(name, ())
        if hops is None or name in hops or len(set(hops)) != len(hops):
            where = blocks[name].options["proxyjump"][1]
            messages.append(
                f'{where}: ProxyJump of "{name}" loops or repeats a host; jump not imported'
            )
            continue
        if hops:
            values[name]["jump"] = tuple(hops)
            jumpers.update(hops)

    hosts = [
        Host(name=name, role="bastion" if name in jumpers else "other", **values[name])
        for name in names
    ]
    return hosts + created_hosts, messages
