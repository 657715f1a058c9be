"""The config file: models, validation messages, atomic writes, schema, ssh_config import."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
import textwrap
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from difpipe_tui.core import config as config_module
from difpipe_tui.core.config import (
    HOST_KEY_POLICIES,
    HOST_NAME_PATTERN,
    ROLES,
    Auth,
    Config,
    ConfigKeyError,
    Defaults,
    Host,
    UiSettings,
    config_schema,
    config_to_dict,
    import_ssh_config,
    load_config,
    merge_imported,
    parse_config,
    remove_host,
    save_config,
    upsert_host,
    upsert_hosts,
)
from difpipe_tui.core.errors import ConfigError, ExitCode

EXAMPLE = """\
[defaults]
user = "root"
port = 22
host_key_policy = "strict"
known_hosts = ["~/.ssh/known_hosts"]
connect_timeout = 10.0
keepalive_interval = 15.0
keepalive_count_max = 3

[ui]
theme = "dark"

[ui.keymap]
"screen.hosts" = "h"

[hosts.bastion]
address = "203.0.113.5"
role = "bastion"

[hosts.dmz]
address = "10.0.0.1"
jump = ["bastion"]

[hosts.edge-pi]
address = "192.0.2.10"
port = 2222
user = "pi"
role = "edge"
tags = ["site-a", "pi"]
jump = ["bastion", "dmz"]
host_key_policy = "accept-new"
known_hosts = ["~/pi_known_hosts"]
connect_timeout = 5
keepalive_interval = 0
keepalive_count_max = 5
description = "the Pi in the shop"

[hosts.edge-pi.auth]
key_files = ["~/.ssh/id_ed25519"]
certificate = "~/.ssh/id_ed25519-cert.pub"
agent = false
agent_path = "~/agent.sock"
password_env = "EDGE_PW"
"""


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Point HOME and the XDG locations into tmp_path; clear DifPipe's own variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.delenv("DIFPIPE_CONFIG", raising=False)
    monkeypatch.delenv("DIFPIPE_HOME", raising=False)
    return home


def parse(text: str) -> Config:
    return parse_config(tomllib.loads(textwrap.dedent(text)))


def parse_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------- parsing


def test_example_parses_into_typed_models():
    config = parse(EXAMPLE)
    assert list(config.hosts) == ["bastion", "dmz", "edge-pi"]
    assert config.defaults == Defaults(user="root")
    assert config.ui == UiSettings(theme="dark", keymap={"screen.hosts": "h"})
    assert config.ui.keymap["screen.hosts"] == "h"
    assert config.hosts["edge-pi"] == Host(
        name="edge-pi",
        address="192.0.2.10",
        port=2222,
        user="pi",
        role="edge",
        tags=("site-a", "pi"),
        jump=("bastion", "dmz"),
        auth=Auth(
            key_files=("~/.ssh/id_ed25519",),
            certificate="~/.ssh/id_ed25519-cert.pub",
            agent=False,
            agent_path="~/agent.sock",
            password_env="EDGE_PW",
        ),
        host_key_policy="accept-new",
        known_hosts=("~/pi_known_hosts",),
        connect_timeout=5.0,
        keepalive_interval=0.0,
        keepalive_count_max=5,
        description="the Pi in the shop",
    )
    assert isinstance(config.hosts["edge-pi"].connect_timeout, float)


def test_empty_document_is_an_empty_config():
    assert parse_config({}) == Config()
    assert Config().hosts == {}


def test_host_inherits_port_from_defaults_when_it_sets_none():
    config = parse(
        """
        [defaults]
        port = 2200
        [hosts.a]
        address = "a.example"
        [hosts.b]
        address = "b.example"
        port = 22
        """
    )
    assert config.hosts["a"].port == 2200
    assert config.hosts["b"].port == 22


def test_list_arguments_become_tuples():
    host = Host(name="a", address="a", tags=["x"], jump=["b"], known_hosts=["k"])
    assert host.tags == ("x",)
    assert host.jump == ("b",)
    assert host.known_hosts == ("k",)
    assert Auth(key_files=["k"]).key_files == ("k",)
    assert Defaults(known_hosts=["k"]).known_hosts == ("k",)


@pytest.mark.parametrize(
    ("auth", "methods"),
    [
        (Auth(), ["agent"]),
        (Auth(agent=False), []),
        (
            Auth(key_files=("k",), certificate="c", password_env="PW"),
            ["key", "certificate", "agent", "password_env"],
        ),
        (Auth(agent=False, password_command="pass show x"), ["password_command"]),
    ],
)
def test_auth_methods(auth, methods):
    assert auth.methods() == methods


@pytest.mark.parametrize(
    "address", ["edge.example.com", "192.0.2.10", "::1", "2001:db8::1", "fe80::1%eth0", "my_host"]
)
def test_valid_addresses(address):
    assert parse(f'[hosts.a]\naddress = "{address}"').hosts["a"].address == address


@pytest.mark.parametrize("name", ["a", "edge-pi", "edge_pi", "web.example.com", "10.0.0.1", "A1"])
def test_valid_host_names(name):
    assert name in parse(f'[hosts."{name}"]\naddress = "x"').hosts


# --------------------------------------------------------------------------- validation messages


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[hosts.edge-pi]\naddress = "a"\nprot = 22',
            'hosts.edge-pi.prot: unknown key (did you mean "port"?)',
        ),
        (
            '[hosts.edge-pi]\naddress = "a"\n[hosts.edge-pi.auth]\nkey_file = "k"',
            'hosts.edge-pi.auth.key_file: unknown key (did you mean "key_files"?)',
        ),
        (
            '[defualts]\nuser = "x"',
            'defualts: unknown key (did you mean "defaults"?)',
        ),
        (
            '[ui]\ntheem = "dark"',
            'ui.theem: unknown key (did you mean "theme"?)',
        ),
        (
            '[hosts.a]\naddress = "a"\nzzz = 1',
            "hosts.a.zzz: unknown key (known keys: address, port, user, role, tags, jump, "
            "host_key_policy, known_hosts, connect_timeout, keepalive_interval, "
            "keepalive_count_max, description, auth)",
        ),
        (
            '[hosts.edge-pi]\naddress = "a"\nport = "22a"',
            'hosts.edge-pi.port: expected an integer, got "22a"',
        ),
        (
            '[hosts.edge-pi]\naddress = "a"\nport = true',
            "hosts.edge-pi.port: expected an integer, got true",
        ),
        (
            '[hosts.edge-pi]\naddress = "a"\nport = 22.0',
            "hosts.edge-pi.port: expected an integer, got 22.0",
        ),
        (
            '[hosts.edge-pi]\naddress = "a"\nport = 0',
            "hosts.edge-pi.port: expected an integer from 1 to 65535, got 0",
        ),
        (
            '[hosts.edge-pi]\naddress = "a"\nport = 70000',
            "hosts.edge-pi.port: expected an integer from 1 to 65535, got 70000",
        ),
        (
            '[hosts.x]\naddress = "a"\nrole = "edgy"',
            'hosts.x.role: expected one of edge, cloud, storage, bastion, other, got "edgy"',
        ),
        (
            '[hosts.x]\naddress = "a"\nhost_key_policy = "no"',
            'hosts.x.host_key_policy: expected one of strict, accept-new, got "no"',
        ),
        (
            '[defaults]\nhost_key_policy = "ask"',
            'defaults.host_key_policy: expected one of strict, accept-new, got "ask"',
        ),
        (
            '[hosts.x]\naddress = "a"\nconnect_timeout = 0',
            "hosts.x.connect_timeout: expected a number > 0, got 0",
        ),
        (
            '[defaults]\nconnect_timeout = "10s"',
            'defaults.connect_timeout: expected a number, got "10s"',
        ),
        (
            '[hosts.x]\naddress = "a"\nconnect_timeout = inf',
            "hosts.x.connect_timeout: expected a finite number, got inf",
        ),
        (
            '[hosts.x]\naddress = "a"\nkeepalive_interval = -1.5',
            "hosts.x.keepalive_interval: expected a number >= 0, got -1.5",
        ),
        (
            "[defaults]\nkeepalive_count_max = 0",
            "defaults.keepalive_count_max: expected an integer >= 1, got 0",
        ),
        (
            '[defaults]\ntransport = "ssh"',
            'defaults.transport: expected one of auto, asyncssh, openssh, got "ssh"',
        ),
        (
            "[defaults]\ntransport = 1",
            "defaults.transport: expected a string, got 1",
        ),
        (
            '[hosts.x]\naddress = "a"\ntags = "pi"',
            'hosts.x.tags: expected a list of strings, got "pi"',
        ),
        (
            '[hosts.x]\naddress = "a"\ntags = ["pi", 3]',
            "hosts.x.tags[1]: expected a string, got 3",
        ),
        (
            '[hosts.x]\naddress = "a"\nuser = ""',
            'hosts.x.user: expected a non-empty string, got ""',
        ),
        (
            '[hosts.x]\naddress = "a"\n[hosts.x.auth]\nagent = "yes"',
            'hosts.x.auth.agent: expected true or false, got "yes"',
        ),
        (
            '[hosts.x]\naddress = "a"\n[hosts.x.auth]\npassword_env = "$EDGE PW"',
            'hosts.x.auth.password_env: expected an environment variable name, got "$EDGE PW"',
        ),
        (
            '[hosts.x]\naddress = "a"\n[hosts.x.auth]\npassword_env = "A"\npassword_command = "b"',
            "hosts.x.auth: password_env and password_command are both set (keep one)",
        ),
        (
            '[hosts.x]\naddress = "a"\nauth = "key"',
            'hosts.x.auth: expected a table, got "key"',
        ),
        ('hosts = ["a"]', 'hosts: expected a table, got ["a"]'),
        ('[hosts]\nx = "192.0.2.1"', 'hosts.x: expected a table, got "192.0.2.1"'),
        (
            '[hosts.x]\naddress = "a"\nknown_hosts = {file = "k"}',
            'hosts.x.known_hosts: expected a list of strings, got {file = "k"}',
        ),
        ("[hosts.edge-pi]\nport = 22", "hosts.edge-pi.address: required"),
        (
            '[hosts.x]\naddress = "pi@192.0.2.1"',
            'hosts.x.address: expected a host name or IP address, got "pi@192.0.2.1" '
            '(put the user name in user = "pi")',
        ),
        (
            '[hosts.x]\naddress = "192.0.2.1:2222"',
            'hosts.x.address: expected a host name or IP address, got "192.0.2.1:2222" '
            "(put the port in port = 2222)",
        ),
        (
            '[hosts.x]\naddress = "-oProxyCommand=sh"',
            'hosts.x.address: expected a host name or IP address, got "-oProxyCommand=sh"',
        ),
        (
            '[hosts.x]\naddress = "a b"',
            'hosts.x.address: expected a host name or IP address, got "a b"',
        ),
        (
            '[hosts."edge pi"]\naddress = "a"',
            'hosts."edge pi": invalid host name '
            '(use letters, digits, "-", "_" and ".", starting with a letter or digit)',
        ),
        (
            '[hosts."-x"]\naddress = "a"',
            "hosts.-x: invalid host name "
            '(use letters, digits, "-", "_" and ".", starting with a letter or digit)',
        ),
        (
            '[hosts.bastion]\naddress = "b"\n[hosts.cloud]\naddress = "c"\n'
            '[hosts.edge-pi]\naddress = "a"\njump = ["bastion", "dmz"]',
            'hosts.edge-pi.jump[1]: no host named "dmz" (known: bastion, cloud)',
        ),
        (
            '[hosts.edge-pi]\naddress = "a"\njump = ["dmz"]',
            'hosts.edge-pi.jump[0]: no host named "dmz" (no other hosts are configured)',
        ),
        (
            '[hosts.edge-pi]\naddress = "a"\njump = ["edge-pi"]',
            "hosts.edge-pi.jump[0]: a host cannot jump through itself",
        ),
        (
            '[hosts.b]\naddress = "b"\n[hosts.a]\naddress = "a"\njump = ["b", "b"]',
            'hosts.a.jump[1]: "b" is already in the chain',
        ),
        (
            '[ui.keymap]\n"screen.hosts" = 1',
            'ui.keymap."screen.hosts": expected a string, got 1',
        ),
        ('ui = "dark"', 'ui: expected a table, got "dark"'),
    ],
)
def test_validation_messages(text, message):
    err = parse_error(text)
    assert str(err) == message
    assert err.render() == message
    assert err.exit_code == ExitCode.CONFIG
    assert "\n" not in message


def test_known_names_list_is_capped():
    hosts = "".join(f'[hosts.h{i:02}]\naddress = "a"\n' for i in range(13))
    err = parse_error(hosts + '[hosts.x]\naddress = "a"\njump = ["nope"]')
    assert str(err) == (
        'hosts.x.jump[0]: no host named "nope" '
        "(known: h00, h01, h02, h03, h04, h05, h06, h07, h08, h09, and 3 more)"
    )


def test_errors_carry_the_host_and_key_without_repeating_the_name():
    err = parse_error('[hosts.edge-pi]\naddress = "a"\nport = "22a"')
    assert isinstance(err, ConfigKeyError)
    assert err.host == "edge-pi"
    assert err.key == "hosts.edge-pi.port"
    data = err.to_dict()
    assert data["host"] == "edge-pi"
    assert data["key"] == "hosts.edge-pi.port"
    assert data["message"] == 'hosts.edge-pi.port: expected an integer, got "22a"'
    assert data["exit_code"] == 3
    assert data["retryable"] is False


def test_odd_keys_and_values_stay_on_one_line():
    err = parse_error('[hosts.a]\naddress = "a"\n"x\\ny" = 1')
    assert str(err).startswith('hosts.a."x\\ny": unknown key (known keys: address, port,')
    assert "\n" not in str(err)
    err = parse_error('[hosts.a]\naddress = "p\\ni@h"')
    assert str(err) == (
        'hosts.a.address: expected a host name or IP address, got "p\\ni@h" '
        '(put the user name in user = "p\\ni")'
    )


def test_errors_outside_hosts_have_no_host():
    assert parse_error("[defaults]\nport = 0").host is None


# --------------------------------------------------------------------------- passwords in clear

PASSWORD_HINT = (
    'passwords are not stored in the config in clear; use password_env = "VAR" or '
    'password_command = "..." (or an SSH key / ssh-agent)'
)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            '[hosts.edge-pi]\naddress = "a"\n[hosts.edge-pi.auth]\npassword = "s3cret"',
            "auth.password",
        ),
        ('[hosts.edge-pi]\naddress = "a"\npassword = "s3cret"', "password"),
        ('[hosts.edge-pi]\naddress = "a"\npasswd = "s3cret"', "passwd"),
        ('[hosts.edge-pi]\naddress = "a"\npass = "s3cret"', "pass"),
        (
            '[hosts.edge-pi]\naddress = "a"\n[hosts.edge-pi.auth]\npassphrase = "x"',
            "auth.passphrase",
        ),
        ('[hosts.edge-pi]\naddress = "a"\nPassword = "s3cret"', "Password"),
    ],
)
def test_password_in_clear_is_refused_naming_the_host(text, key):
    err = parse_error(text)
    assert str(err) == f"hosts.edge-pi.{key}: {PASSWORD_HINT}"
    assert err.host == "edge-pi"


def test_password_in_defaults_or_top_level_is_refused():
    assert str(parse_error('[defaults]\npassword = "x"')) == f"defaults.password: {PASSWORD_HINT}"
    assert str(parse_error('password = "x"')) == f"password: {PASSWORD_HINT}"


def test_password_is_reported_before_other_problems():
    err = parse_error(
        """
        [hosts.a]
        prot = 22
        [hosts.b]
        address = "b"
        [hosts.b.auth]
        password = "x"
        """
    )
    assert str(err) == f"hosts.b.auth.password: {PASSWORD_HINT}"


def test_a_host_may_be_named_pass():
    assert "pass" in parse('[hosts.pass]\naddress = "a"').hosts


# --------------------------------------------------------------------------- resolve and jumps


def test_resolve_fills_inherited_values_and_expands_home(isolated_env):
    config = parse(EXAMPLE)
    edge = config.resolve("edge-pi")
    home = str(isolated_env)
    own_known_hosts = str(Path(os.environ["XDG_STATE_HOME"]) / "difpipe" / "known_hosts")
    assert edge.user == "pi"
    assert edge.port == 2222
    assert edge.host_key_policy == "accept-new"
    assert edge.known_hosts == (f"{home}/pi_known_hosts", own_known_hosts)
    assert edge.auth.key_files == (f"{home}/.ssh/id_ed25519",)
    assert edge.auth.certificate == f"{home}/.ssh/id_ed25519-cert.pub"
    assert edge.auth.agent_path == f"{home}/agent.sock"
    assert edge.auth.password_env == "EDGE_PW"
    assert (edge.connect_timeout, edge.keepalive_interval, edge.keepalive_count_max) == (
        5.0,
        0.0,
        5,
    )

    bastion = config.resolve("bastion")
    assert bastion.user == "root"
    assert bastion.host_key_policy == "strict"
    assert bastion.known_hosts == (f"{home}/.ssh/known_hosts", own_known_hosts)
    assert (bastion.connect_timeout, bastion.keepalive_interval) == (10.0, 15.0)
    assert bastion.keepalive_count_max == 3
    assert bastion.auth == Auth()


def test_resolve_uses_the_local_user_when_none_is_configured(monkeypatch):
    monkeypatch.setenv("LOGNAME", "alice")
    assert parse('[hosts.a]\naddress = "a"').resolve("a").user == "alice"


def test_resolve_does_not_list_a_known_hosts_file_twice(isolated_env):
    own = str(Path(os.environ["XDG_STATE_HOME"]) / "difpipe" / "known_hosts")
    config = parse(f'[hosts.a]\naddress = "a"\nknown_hosts = ["{own}", "{own}"]')
    assert config.resolve("a").known_hosts == (own,)


def test_jump_chain_is_exactly_the_hosts_jump_list():
    config = parse(EXAMPLE)
    assert [h.name for h in config.jump_chain("edge-pi")] == ["bastion", "dmz"]
    # dmz's own jump (bastion) is not followed a second time
    assert [h.name for h in config.jump_chain("dmz")] == ["bastion"]
    assert config.jump_chain("bastion") == []
    assert config.jump_chain("edge-pi")[0] == config.resolve("bastion")


def test_unknown_host_names_the_host_and_lists_known_ones(tmp_path):
    config = dataclasses.replace(parse(EXAMPLE), path=tmp_path / "difpipe.toml")
    with pytest.raises(ConfigError) as info:
        config.host("edge-pj")
    assert info.value.host == "edge-pj"
    assert str(info.value) == (
        f"edge-pj: no such host in {tmp_path / 'difpipe.toml'} (known: bastion, dmz, edge-pi)"
    )
    with pytest.raises(ConfigError, match=r"^x: no such host \(no hosts are configured\)$"):
        Config().resolve("x")


# --------------------------------------------------------------------------- loading


def test_load_missing_file_gives_an_empty_config_with_its_path(tmp_path):
    path = tmp_path / "none.toml"
    assert load_config(path) == Config(path=path)
    with pytest.raises(ConfigError, match=rf"^{path}: no such config file$"):
        load_config(path, missing_ok=False)


def test_load_sets_path_and_accepts_str(tmp_path):
    path = write(tmp_path / "c.toml", EXAMPLE)
    config = load_config(str(path))
    assert config.path == path
    assert config == dataclasses.replace(parse(EXAMPLE), path=path)


def test_load_finds_the_file_like_paths_does(tmp_path, monkeypatch):
    xdg = write(tmp_path / "xdg-config" / "difpipe" / "difpipe.toml", '[hosts.xdg]\naddress = "a"')
    assert list(load_config().hosts) == ["xdg"]
    assert load_config().path == xdg

    home = write(tmp_path / "dphome" / "difpipe.toml", '[hosts.home]\naddress = "a"')
    monkeypatch.setenv("DIFPIPE_HOME", str(home.parent))
    assert list(load_config().hosts) == ["home"]

    explicit = write(tmp_path / "env.toml", '[hosts.env]\naddress = "a"')
    monkeypatch.setenv("DIFPIPE_CONFIG", str(explicit))
    assert list(load_config().hosts) == ["env"]
    assert list(load_config(xdg).hosts) == ["xdg"]


def test_toml_syntax_error_names_the_file_line_and_column(tmp_path):
    path = write(tmp_path / "difpipe.toml", '[hosts.a]\naddress = "a"\nport = \n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: invalid TOML at line 3, column 8: invalid value"


def test_toml_error_at_end_of_document(tmp_path):
    path = write(tmp_path / "difpipe.toml", '[hosts.a]\naddress = "a')
    with pytest.raises(ConfigError, match=rf"^{path}: invalid TOML at "):
        load_config(path)


def test_non_utf8_file_is_a_config_error(tmp_path):
    path = tmp_path / "difpipe.toml"
    path.write_bytes(b'[hosts.a]\naddress = "\xff"\n')
    with pytest.raises(ConfigError, match=rf"^{path}: not UTF-8 text \(byte 21\)$"):
        load_config(path)


def test_unreadable_path_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: cannot read the config: "):
        load_config(tmp_path)


def test_validation_errors_from_a_file_record_the_path(tmp_path):
    path = write(tmp_path / "difpipe.toml", "[defaults]\nport = 0")
    with pytest.raises(ConfigKeyError) as info:
        load_config(path)
    assert info.value.path == path
    assert info.value.to_dict()["path"] == str(path)


# --------------------------------------------------------------------------- writing


def test_config_to_dict_leaves_out_defaults():
    config = Config(hosts={"a": Host(name="a", address="192.0.2.1")})
    assert config_to_dict(config) == {"hosts": {"a": {"address": "192.0.2.1"}}}
    assert config_to_dict(Config()) == {}


def test_config_to_dict_writes_port_only_when_it_differs_from_defaults_port():
    defaults = Defaults(port=2200)
    hosts = {
        "a": Host(name="a", address="a", port=2200),
        "b": Host(name="b", address="b", port=22),
    }
    data = config_to_dict(Config(hosts=hosts, defaults=defaults))
    assert data["defaults"] == {"port": 2200}
    assert data["hosts"] == {"a": {"address": "a"}, "b": {"address": "b", "port": 22}}


def test_example_round_trips_through_save_and_load(tmp_path):
    config = parse(EXAMPLE)
    path = save_config(config, tmp_path / "out.toml")
    assert path == tmp_path / "out.toml"
    assert load_config(path) == dataclasses.replace(config, path=path)


def test_save_defaults_to_the_configs_own_path(tmp_path):
    path = tmp_path / "own.toml"
    config = dataclasses.replace(parse(EXAMPLE), path=path)
    assert save_config(config) == path
    assert load_config(path) == config


def test_save_uses_the_default_location(tmp_path):
    path = save_config(parse(EXAMPLE))
    assert path == tmp_path / "xdg-config" / "difpipe" / "difpipe.toml"
    assert path.exists()


def test_save_creates_a_private_directory_and_file(tmp_path):
    path = tmp_path / "new" / "difpipe.toml"
    save_config(parse(EXAMPLE), path)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_keeps_the_file_mode(tmp_path):
    path = write(tmp_path / "difpipe.toml", "")
    path.chmod(0o640)
    save_config(parse(EXAMPLE), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_save_writes_through_a_symlink(tmp_path):
    real = write(tmp_path / "dotfiles" / "difpipe.toml", "")
    link = tmp_path / "difpipe.toml"
    link.symlink_to(real)
    save_config(parse(EXAMPLE), link)
    assert link.is_symlink()
    assert load_config(real).hosts == parse(EXAMPLE).hosts


def _fail_mid_write(obj, fh, *args, **kwargs):
    fh.write(b"[hosts.half")
    raise OSError(errno.ENOSPC, "No space left on device")


def _fail_replace(src, dst):
    raise OSError(errno.EACCES, "Permission denied")


@pytest.mark.parametrize(
    ("target", "replacement", "reason"),
    [
        (tomli_w, _fail_mid_write, "No space left on device"),
        (os, _fail_replace, "Permission denied"),
    ],
)
def test_failed_save_leaves_the_original_intact(tmp_path, monkeypatch, target, replacement, reason):
    path = write(tmp_path / "difpipe.toml", '[hosts.old]\naddress = "a"  # keep me\n')
    before = path.read_bytes()
    name = "dump" if target is tomli_w else "replace"
    monkeypatch.setattr(target, name, replacement)
    with pytest.raises(ConfigError) as info:
        save_config(parse(EXAMPLE), path)
    assert str(info.value) == f"{path}: cannot write the config: {reason}"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["difpipe.toml", "home"]


def test_interrupted_save_removes_its_temp_file(tmp_path, monkeypatch):
    path = write(tmp_path / "difpipe.toml", '[hosts.old]\naddress = "a"\n')
    before = path.read_bytes()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tomli_w, "dump", interrupt)
    with pytest.raises(KeyboardInterrupt):
        upsert_host(Host(name="new", address="b"), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["difpipe.toml", "home"]


def test_an_invalid_config_is_never_saved(tmp_path):
    path = tmp_path / "difpipe.toml"
    bad = Config(hosts={"a": Host(name="a", address="a", port=0)})
    with pytest.raises(ConfigError, match=r"^hosts\.a\.port: expected an integer from 1 to 65535"):
        save_config(bad, path)
    assert not path.exists()
    dangling = Config(hosts={"a": Host(name="a", address="a", jump=("b",))})
    with pytest.raises(ConfigError, match=r'^hosts\.a\.jump\[0\]: no host named "b"'):
        save_config(dangling, path)
    assert not path.exists()


# --------------------------------------------------------------------------- upsert and remove

USER_FILE = """\
[defaults]
user = "ops"
port = 22
connect_timeout = 7

[ui]
theme = "high-contrast"

[ui.keymap]
"screen.hosts" = "H"

[hosts.bastion]
address = "203.0.113.5"
role = "bastion"
port = 22

[hosts.cloud]
address = "cloud.example.net"
tags = ["prod"]
jump = ["bastion"]

[hosts.cloud.auth]
agent = true
"""


def test_upsert_adds_a_host_and_keeps_everything_else(tmp_path):
    path = write(tmp_path / "difpipe.toml", USER_FILE)
    before = tomllib.loads(USER_FILE)
    host = Host(
        name="edge-pi",
        address="192.0.2.10",
        user="pi",
        role="edge",
        jump=("bastion",),
        auth=Auth(key_files=("~/.ssh/id_ed25519",), password_command="pass show edge-pi"),
    )
    returned = upsert_host(host, path)
    after = tomllib.loads(path.read_text())
    assert {k: v for k, v in after.items() if k != "hosts"} == {
        k: v for k, v in before.items() if k != "hosts"
    }
    assert after["hosts"]["bastion"] == before["hosts"]["bastion"]
    assert after["hosts"]["cloud"] == before["hosts"]["cloud"]
    assert list(after["hosts"]) == ["bastion", "cloud", "edge-pi"]
    loaded = load_config(path)
    assert loaded == returned
    assert loaded.hosts["edge-pi"] == host


def test_upsert_replaces_a_host_in_place(tmp_path):
    path = write(tmp_path / "difpipe.toml", USER_FILE)
    bastion = Host(name="bastion", address="198.51.100.1", port=2222, role="bastion")
    config = upsert_host(bastion, path)
    assert list(config.hosts) == ["bastion", "cloud"]
    assert config.hosts["bastion"] == bastion
    assert config.hosts["cloud"] == parse(USER_FILE).hosts["cloud"]


def test_upsert_creates_the_file(tmp_path):
    path = tmp_path / "sub" / "difpipe.toml"
    config = upsert_host(Host(name="a", address="a"), path)
    assert path.exists()
    assert config == Config(hosts={"a": Host(name="a", address="a")}, path=path)


def test_upsert_omits_a_port_equal_to_the_files_defaults_port(tmp_path):
    path = write(tmp_path / "difpipe.toml", "[defaults]\nport = 2200\n")
    upsert_host(Host(name="a", address="a", port=2200), path)
    upsert_host(Host(name="b", address="b", port=22), path)
    hosts = tomllib.loads(path.read_text())["hosts"]
    assert hosts == {"a": {"address": "a"}, "b": {"address": "b", "port": 22}}


def test_upsert_refuses_an_invalid_host_and_writes_nothing(tmp_path):
    path = write(tmp_path / "difpipe.toml", USER_FILE)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r'^hosts\.x\.jump\[0\]: no host named "dmz" '):
        upsert_host(Host(name="x", address="a", jump=("dmz",)), path)
    with pytest.raises(ConfigError, match=r'^hosts\."bad name": invalid host name'):
        upsert_host(Host(name="bad name", address="a"), path)
    with pytest.raises(ConfigError, match=r"^hosts\.x\.auth: password_env and password_command"):
        upsert_host(
            Host(name="x", address="a", auth=Auth(password_env="A", password_command="b")), path
        )
    assert path.read_bytes() == before


def test_upsert_refuses_to_touch_a_file_with_a_password_in_it(tmp_path):
    path = write(tmp_path / "difpipe.toml", '[defaults]\npassword = "x"\n')
    with pytest.raises(ConfigError, match=r"^defaults\.password: passwords are not stored") as info:
        upsert_host(Host(name="a", address="a"), path)
    assert info.value.path == path


def test_upsert_hosts_writes_hosts_that_jump_through_each_other_at_once(tmp_path):
    path = tmp_path / "difpipe.toml"
    edge = Host(name="edge", address="e", jump=("gw",))
    gw = Host(name="gw", address="g")
    config = upsert_hosts([edge, gw], path)
    assert list(config.hosts) == ["edge", "gw"]
    assert load_config(path) == config


def test_remove_host(tmp_path):
    path = write(tmp_path / "difpipe.toml", USER_FILE)
    config = remove_host("cloud", path)
    assert list(config.hosts) == ["bastion"]
    assert load_config(path) == config
    assert load_config(path).ui == parse(USER_FILE).ui


def test_remove_host_refuses_a_jump_host_in_use(tmp_path):
    path = write(tmp_path / "difpipe.toml", USER_FILE)
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        remove_host("bastion", path)
    assert str(info.value) == (
        "hosts.bastion: cannot remove: cloud jumps through it "
        "(remove it from those jump lists first)"
    )
    assert info.value.host == "bastion"
    assert path.read_bytes() == before


def test_remove_unknown_host(tmp_path):
    path = write(tmp_path / "difpipe.toml", USER_FILE)
    with pytest.raises(ConfigError, match=r"^nope: no such host in .* \(known: bastion, cloud\)$"):
        remove_host("nope", path)


# --------------------------------------------------------------------------- JSON Schema


def _object_schemas(schema):
    defs = schema["$defs"]
    return {
        "defaults": (defs["defaults"], Defaults, set()),
        "ui": (defs["ui"], UiSettings, set()),
        "host": (defs["host"], Host, {"name"}),
        "auth": (defs["auth"], Auth, set()),
    }


def test_schema_is_draft_2020_12_and_json():
    schema = config_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json.loads(json.dumps(schema)) == schema
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"defaults", "ui", "hosts"}
    assert schema["properties"]["hosts"]["propertyNames"]["pattern"] == HOST_NAME_PATTERN
    assert schema["$defs"]["host"]["required"] == ["address"]


def test_schema_properties_match_the_models():
    for name, (sub, model, skip) in _object_schemas(config_schema()).items():
        fields = {f.name for f in dataclasses.fields(model)} - skip
        assert set(sub["properties"]) == fields, name
        assert sub["additionalProperties"] is False, name
        for key, prop in sub["properties"].items():
            assert prop.get("description"), (name, key)


def test_schema_enums_and_defaults_match_the_code():
    defs = config_schema()["$defs"]
    assert defs["host"]["properties"]["role"]["enum"] == list(ROLES)
    assert defs["host"]["properties"]["host_key_policy"]["enum"] == list(HOST_KEY_POLICIES)
    assert defs["defaults"]["properties"]["host_key_policy"]["enum"] == list(HOST_KEY_POLICIES)
    assert "default" not in defs["host"]["properties"]["port"]
    for sub, model, _ in _object_schemas(config_schema()).values():
        instance = model(name="n", address="a") if model is Host else model()
        for key, prop in sub["properties"].items():
            if "default" in prop:
                value = getattr(instance, key)
                assert prop["default"] == (list(value) if isinstance(value, tuple) else value)


def _sample(prop, defs):
    """A valid value for one schema property."""
    if "$ref" in prop:
        return {}
    if "enum" in prop:
        return prop["enum"][-1]
    kind = prop["type"]
    if kind == "array":
        return [_sample(prop["items"], defs)]
    if kind == "object":
        return {"some.binding": "k"}
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return prop.get("maximum", prop.get("minimum", prop.get("exclusiveMinimum", 0) + 1))
    return "X_1"


def test_every_schema_property_is_accepted_by_the_parser():
    schema = config_schema()
    defs = schema["$defs"]

    def table(name):
        return {k: _sample(p, defs) for k, p in defs[name]["properties"].items()}

    host = table("host") | {"jump": ["other"], "auth": table("auth")}
    del host["auth"]["password_command"]
    data = {
        "defaults": table("defaults"),
        "ui": table("ui"),
        "hosts": {"h": host, "other": {"address": "o"}},
    }
    config = parse_config(data)
    assert config.hosts["h"].auth.password_env == "X_1"
    assert config.ui.keymap == {"some.binding": "k"}


def test_the_parser_accepts_nothing_beyond_the_schema():
    for sub, _, _ in _object_schemas(config_schema()).values():
        props = sub["properties"]
        for unknown in ("nickname", "identity_file"):
            assert unknown not in props
    with pytest.raises(ConfigError, match="unknown key"):
        parse('[hosts.a]\naddress = "a"\nnickname = "x"')


# --------------------------------------------------------------------------- ssh_config import

SSH_CONFIG = """\
# ~/.ssh/config of an ops engineer
Include ~/.ssh/config.d/*

Host bastion
    HostName bastion.example.com
    User ops
    Port 2222
    IdentityFile ~/.ssh/id_ed25519
    IdentityFile ~/.ssh/id_rsa
    User ignored-second-value

Host dmz dmz.internal
    HostName=10.1.0.5
    User = admin
    ProxyJump bastion

host edge-pi   # the shop's Pi
    hostname 192.168.50.10
    user pi
    PROXYJUMP dmz
    IdentityAgent ~/.1password/agent.sock
    CertificateFile "~/.ssh/id_ed25519-cert.pub"
    StrictHostKeyChecking accept-new
    ConnectTimeout 4
    SendEnv LANG

Host cloud
    HostName %h.example.net
    ProxyJump deploy@gw.example.org:2200,bastion
    IdentityAgent none
    ServerAliveInterval 30
    ServerAliveCountMax 5
    IdentityFile %d/.ssh/cloud_%r_%h

Host *.example.com !secret.example.com
    User nobody

Match host foo exec "true"
    User matched

Host *
    ServerAliveInterval 60
    User everyone
"""


def test_import_realistic_ssh_config():
    hosts, messages = import_ssh_config(SSH_CONFIG)
    by_name = {h.name: h for h in hosts}
    assert list(by_name) == ["bastion", "dmz", "edge-pi", "cloud", "deploy-gw.example.org"]
    assert by_name["bastion"] == Host(
        name="bastion",
        address="bastion.example.com",
        port=2222,
        user="ops",
        role="bastion",
        auth=Auth(key_files=("~/.ssh/id_ed25519", "~/.ssh/id_rsa")),
    )
    assert by_name["dmz"] == Host(
        name="dmz", address="10.1.0.5", user="admin", role="bastion", jump=("bastion",)
    )
    assert by_name["edge-pi"] == Host(
        name="edge-pi",
        address="192.168.50.10",
        user="pi",
        jump=("bastion", "dmz"),
        host_key_policy="accept-new",
        connect_timeout=4.0,
        auth=Auth(certificate="~/.ssh/id_ed25519-cert.pub", agent_path="~/.1password/agent.sock"),
    )
    assert by_name["cloud"] == Host(
        name="cloud",
        address="cloud.example.net",
        jump=("deploy-gw.example.org", "bastion"),
        keepalive_interval=30.0,
        keepalive_count_max=5,
        auth=Auth(agent=False, key_files=("~/.ssh/cloud_%r_cloud.example.net",)),
    )
    assert by_name["deploy-gw.example.org"] == Host(
        name="deploy-gw.example.org",
        address="gw.example.org",
        port=2200,
        user="deploy",
        role="bastion",
        description="ProxyJump deploy@gw.example.org:2200 in ssh_config",
    )
    assert messages == [
        "ssh_config:2: Include ignored; import ~/.ssh/config.d/* separately",
        'ssh_config:12: imported Host dmz dmz.internal as "dmz" (other names: dmz.internal)',
        "ssh_config:35: skipped Host '*.example.com !secret.example.com': "
        "wildcard patterns are not imported",
        "ssh_config:38: skipped Match block: Match is not imported",
        "ssh_config:41: skipped Host '*': wildcard patterns are not imported",
        'ssh_config:29: added host "deploy-gw.example.org" for ProxyJump '
        "deploy@gw.example.org:2200",
    ]


def test_imported_hosts_are_a_valid_config(tmp_path):
    hosts, _ = import_ssh_config(SSH_CONFIG)
    config = upsert_hosts(hosts, tmp_path / "difpipe.toml")
    assert list(config.hosts.values()) == hosts
    assert config.resolve("edge-pi").jump == ("bastion", "dmz")


def test_import_maps_a_secondary_alias_and_copies_a_host_for_another_user():
    text = """
    Host gw gateway
        HostName gw.example.com
        User ops
        IdentityFile ~/.ssh/gw
    Host a
        ProxyJump gateway
    Host b
        ProxyJump root@gw
    Host c
        ProxyJump gw:22
    """
    hosts, messages = import_ssh_config(textwrap.dedent(text), source="cfg")
    by_name = {h.name: h for h in hosts}
    assert by_name["a"].jump == ("gw",)
    assert by_name["c"].jump == ("gw",)
    assert by_name["b"].jump == ("root-gw",)
    assert by_name["root-gw"] == Host(
        name="root-gw",
        address="gw.example.com",
        user="root",
        role="bastion",
        auth=Auth(key_files=("~/.ssh/gw",)),
        description="ProxyJump root@gw in cfg",
    )
    assert 'cfg:9: added host "root-gw" for ProxyJump root@gw' in messages


def test_import_refuses_a_proxyjump_loop():
    text = "Host a\n ProxyJump b\nHost b\n ProxyJump a\nHost c\n ProxyJump c\n"
    hosts, messages = import_ssh_config(text)
    assert all(h.jump == () for h in hosts)
    assert messages == [
        'ssh_config:2: ProxyJump of "a" loops or repeats a host; jump not imported',
        'ssh_config:4: ProxyJump of "b" loops or repeats a host; jump not imported',
        'ssh_config:6: ProxyJump of "c" loops or repeats a host; jump not imported',
    ]


def test_import_reports_what_it_cannot_take():
    text = textwrap.dedent(
        """
        Host x
            Port twenty-two
            ProxyCommand ssh -W %h:%p gw
            StrictHostKeyChecking no
            UserKnownHostsFile /dev/null ~/.ssh/known_hosts_x
            CertificateFile ~/a-cert.pub
            CertificateFile ~/b-cert.pub
            ProxyJump [2001:db8::1]:bad
            IdentityFile none
        Host y
            ProxyJump none
        Host bad/name
            User z
        Host unterminated
            User "oops
        """
    )
    hosts, messages = import_ssh_config(text)
    by_name = {h.name: h for h in hosts}
    assert by_name["x"] == Host(
        name="x",
        address="x",
        known_hosts=("~/.ssh/known_hosts_x",),
        auth=Auth(certificate="~/a-cert.pub"),
    )
    assert by_name["y"] == Host(name="y", address="y")
    assert set(by_name) == {"x", "y", "unterminated"}
    assert messages == [
        "ssh_config:13: skipped Host 'bad/name': not a valid host name",
        "ssh_config:16: unbalanced quotes; line skipped",
        "ssh_config:3: Port 'twenty-two' is not a port number; ignored",
        "ssh_config:8: only the first CertificateFile is imported",
        "ssh_config:5: StrictHostKeyChecking no is not imported: DifPipe always checks host keys",
        "ssh_config:6: UserKnownHostsFile /dev/null is not imported",
        "ssh_config:4: ProxyCommand is not imported; use ProxyJump",
        "ssh_config:9: ProxyJump '[2001:db8::1]:bad' is not understood; jump not imported",
    ]


def test_import_handles_ipv6_jumps_and_yes_checking():
    text = "Host a\n ProxyJump [2001:db8::1]:2222\n StrictHostKeyChecking yes\n"
    hosts, _ = import_ssh_config(text)
    assert hosts[0].jump == ("2001-db8-1",)
    assert hosts[0].host_key_policy == "strict"
    assert hosts[1] == Host(
        name="2001-db8-1",
        address="2001:db8::1",
        port=2222,
        role="bastion",
        description="ProxyJump [2001:db8::1]:2222 in ssh_config",
    )


def test_import_of_nothing():
    assert import_ssh_config("") == ([], [])
    assert import_ssh_config("# only a comment\n\n") == ([], [])


def test_merge_imported_splits_new_and_existing_names():
    config = parse(USER_FILE)
    hosts = [Host(name="bastion", address="x"), Host(name="new", address="y")]
    assert merge_imported(config, hosts) == (["new"], ["bastion"])


# --------------------------------------------------------------------------- property tests

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,12}", fullmatch=True)
words = st.text(min_size=1, max_size=12)
addresses = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z0-9]{1,6}){0,2}", fullmatch=True),
    st.ip_addresses().map(str),
)
positive = st.floats(min_value=0, exclude_min=True, max_value=1e6, allow_nan=False)
non_negative = st.floats(min_value=0, max_value=1e6, allow_nan=False)
paths = st.lists(words, max_size=3).map(tuple)

auths = st.builds(
    Auth,
    key_files=paths,
    certificate=st.none() | words,
    agent=st.booleans(),
    agent_path=st.none() | words,
    password_env=st.none() | st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True),
)
defaults = st.builds(
    Defaults,
    user=st.none() | words,
    port=st.integers(1, 65535),
    host_key_policy=st.sampled_from(HOST_KEY_POLICIES),
    known_hosts=paths,
    connect_timeout=positive,
    keepalive_interval=non_negative,
    keepalive_count_max=st.integers(1, 1000),
)


@st.composite
def configs(draw):
    host_names = draw(st.lists(names, unique=True, max_size=4))
    hosts = {}
    for name in host_names:
        others = [n for n in host_names if n != name]
        jump = draw(st.lists(st.sampled_from(others), unique=True)) if others else []
        hosts[name] = Host(
            name=name,
            address=draw(addresses),
            port=draw(st.integers(1, 65535)),
            user=draw(st.none() | words),
            role=draw(st.sampled_from(ROLES)),
            tags=draw(paths),
            jump=tuple(jump),
            auth=draw(auths),
            host_key_policy=draw(st.none() | st.sampled_from(HOST_KEY_POLICIES)),
            known_hosts=draw(st.none() | paths),
            connect_timeout=draw(st.none() | positive),
            keepalive_interval=draw(st.none() | non_negative),
            keepalive_count_max=draw(st.none() | st.integers(1, 1000)),
            description=draw(st.text(max_size=20)),
        )
    ui = UiSettings(theme=draw(words), keymap=draw(st.dictionaries(words, words, max_size=3)))
    return Config(hosts=hosts, defaults=draw(defaults), ui=ui)


@settings(max_examples=150, deadline=None)
@given(configs())
def test_any_valid_config_round_trips_through_toml(config):
    text = tomli_w.dumps(config_to_dict(config))
    assert parse_config(tomllib.loads(text)) == config


toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=8),
)
interesting_keys = st.sampled_from(
    [
        "defaults",
        "ui",
        "hosts",
        "keymap",
        "auth",
        "address",
        "port",
        "jump",
        "tags",
        "role",
        "password",
        "known_hosts",
        "connect_timeout",
        "agent",
        "key_files",
        "password_env",
        "password_command",
        "edge",
        "x",
    ]
) | st.text(max_size=6)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(interesting_keys, inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(interesting_keys, toml_values, max_size=4))
def test_parser_only_ever_raises_config_errors(data):
    try:
        parse_config(data)
    except ConfigError as err:
        assert "\n" not in str(err)


@settings(max_examples=100, deadline=None)
@given(st.integers(-(2**63), 2**63 - 1).filter(lambda p: not 1 <= p <= 65535))
def test_any_out_of_range_port_is_refused(port):
    with pytest.raises(ConfigError) as info:
        parse_config({"hosts": {"a": {"address": "a", "port": port}}})
    assert str(info.value) == f"hosts.a.port: expected an integer from 1 to 65535, got {port}"


def test_module_exports_what_it_promises():
    for name in config_module.__all__:
        assert hasattr(config_module, name), name
