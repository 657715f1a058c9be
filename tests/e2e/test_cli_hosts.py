"""The installed ``difpipe`` command end to end: real processes, real sshd hosts (the lab).

Every run has its own ``DIFPIPE_HOME`` and ``HOME`` and the config passed with ``--config``;
independent runs are started together and collected afterwards to keep the file quick.
"""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

import difpipe_tui
from tests.e2e.runner import COLUMNS, DIFPIPE, Difpipe, Run
from tests.lab.keys import known_hosts_line
from tests.lab.system import free_port

FORMATS = ("table", "json", "yaml", "csv")

# Hosts in TEST-NET-1: never connected to (the commands below fail before connecting).
STATIC_CONFIG = """\
[defaults]
user = "ops"

[hosts.edge]
address = "192.0.2.10"
role = "edge"

[hosts.cloud]
address = "192.0.2.11"
role = "cloud"
"""

SSH_CONFIG = """\
# the ssh_config of an operator
Host *
    ServerAliveInterval 30
    IdentitiesOnly yes
    AddKeysToAgent yes

Host *.corp
    User corp-admin
    ProxyJump gate.corp

Host jumpbox
    HostName 203.0.113.5
    User ops
    Port 2222
    IdentityFile ~/.ssh/id_jump

Host app1 app1.example.net
    HostName 10.20.0.7
    User deploy
    ProxyJump jumpbox
    IdentityFile ~/.ssh/id_app
"""

EXISTING_CONFIG = """\
# hand-written
[defaults]
user = "keep"
connect_timeout = 7.5

[hosts.other]
address = "192.0.2.7"
port = 2200
role = "storage"
tags = ["site-b"]
"""

# Runs a command with a file size limit: writing a file past it fails with EFBIG (Python
# ignores SIGXFSZ), which stops a save even as root; pipes (stdout, stderr) are not limited.
FSIZE_LIMITED = (
    "import os, resource, sys\n"
    "limit = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


@pytest.fixture
def dp(tmp_path: Path) -> Difpipe:
    return Difpipe(tmp_path / "home")


@pytest.fixture
def static_config(tmp_path: Path) -> Path:
    path = tmp_path / "static.toml"
    path.write_text(STATIC_CONFIG)
    return path


@pytest.fixture
def ssh_config(tmp_path: Path) -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(SSH_CONFIG)
    return path


def _output(run: Run) -> str:
    return run.argv[run.argv.index("-o") + 1] if "-o" in run.argv else "table"


def assert_failed(run: Run, code: int, kind: str, *named: str, retryable: bool = False) -> dict:
    """Exit ``code``, one stderr line naming ``named``; with ``-o json`` the error as an object."""
    assert run.code == code, str(run)
    line = run.error
    for thing in named:
        assert thing in line, str(run)
    if _output(run) != "json":
        assert run.stdout == "", str(run)
        return {}
    doc = run.json()
    assert doc["error"] == kind, str(run)
    assert doc["exit_code"] == code, str(run)
    assert doc["retryable"] is retryable, str(run)
    assert doc["message"] == line, str(run)
    return doc


def assert_down(run: Run, code: int, name: str, *phrases: str, retryable: bool) -> dict:
    """``hosts check -o json`` with ``name`` down: its row says why; stderr has one line for it."""
    rows = {row["name"]: row for row in run.json()}
    row = rows[name]
    assert row["reachable"] is False, str(run)
    assert row["exit_code"] == code, str(run)
    assert row["retryable"] is retryable, str(run)
    assert row["error"].startswith(f"{name}: "), str(run)
    for phrase in phrases:
        assert phrase in row["error"], str(run)
    assert row["auth_method"] is None and row["tools"] == [] and row["free_bytes"] is None
    assert row["error"] in run.errors, str(run)
    return row


# -- hosts check / hosts list against the lab -------------------------------------------------


def test_check_reports_every_lab_host_in_every_format(lab, lab_config, dp):
    dp.config = lab_config
    started = time.time()
    pending = {fmt: dp.start("hosts", "check", "-o", fmt) for fmt in FORMATS}
    runs = {fmt: p.wait() for fmt, p in pending.items()}
    for run in runs.values():
        assert run.code == 0 and run.stderr == "", str(run)
    names = list(lab.hosts)

    hosts = runs["json"].json()
    assert [h["name"] for h in hosts] == names
    for h in hosts:
        lh = lab[h["name"]]
        assert h["address"] == f"{lh.address}:{lh.port}" and h["role"] == lh.role
        assert h["reachable"] is True and h["error"] is None and h["exit_code"] == 0
        assert h["auth_method"] == "publickey"
        assert h["os"] == "Linux" and h["arch"]
        assert {"sh", "cat", "sha256sum"} <= set(h["tools"]) and h["shell"] is True
        assert isinstance(h["free_bytes"], int) and h["free_bytes"] > 0
        assert 0 <= h["latency_ms"] < 500
        assert started <= h["checked_at"] <= time.time()
    assert {h["name"]: h["via"] for h in hosts} == {
        "edge": [],
        "cloud": [],
        "storage": [],
        "bastion": [],
        "inner": ["bastion"],
    }

    stable = ("name", "address", "role", "reachable", "via", "auth_method", "os", "arch")
    stable += ("tools", "shell", "exit_code", "error")
    from_yaml = runs["yaml"].yaml()
    assert [{k: h[k] for k in stable} for h in from_yaml] == [
        {k: h[k] for k in stable} for h in hosts
    ]
    assert all(h["free_bytes"] > 0 and 0 <= h["latency_ms"] < 500 for h in from_yaml)

    rows = runs["csv"].csv()
    assert list(rows[0]) == list(hosts[0])
    for row, h in zip(rows, hosts, strict=True):
        assert (row["name"], row["reachable"], row["error"]) == (h["name"], "true", "")
        assert (row["auth_method"], row["os"]) == ("publickey", "Linux")
        assert row["tools"].split() == h["tools"]
        assert row["via"].split() == h["via"]
        assert int(row["free_bytes"]) > 0 and 0 <= float(row["latency_ms"]) < 500

    table = runs["table"]
    assert max(len(line) for line in table.stdout.splitlines()) <= COLUMNS, str(table)
    cells = table.table()
    assert [r["HOST"] for r in cells] == names, str(table)
    for r in cells:
        assert (r["STATUS"], r["AUTH"], "ERROR" in r) == ("up", "publickey", False), str(table)
        assert r["OS/ARCH"].startswith("Linux/") and r["LATENCY"].endswith(" ms"), str(table)
        assert r["FREE"].endswith("B"), str(table)

    # A last check of two hosts (a name given twice is checked once), then the stored results.
    last = dp("hosts", "check", "inner", "edge", "inner", "-o", "json")
    assert last.code == 0, str(last)
    last_checked = {h["name"]: h["checked_at"] for h in last.json()}
    assert list(last_checked) == ["inner", "edge"]
    listed, listed_table = dp.start("hosts", "list", "-o", "json"), dp.start("hosts", "list")
    listed, listed_table = listed.wait(), listed_table.wait()
    assert listed.code == 0 and listed_table.code == 0, f"{listed}\n{listed_table}"
    entries = {h["name"]: h for h in listed.json()}
    assert list(entries) == names
    assert entries["inner"]["jump"] == ["bastion"]
    for name, entry in entries.items():
        assert entry["reachable"] is True, str(listed)
        if name in last_checked:
            assert entry["last_seen"] == last_checked[name], str(listed)
        else:
            assert started <= entry["last_seen"] <= last_checked["edge"], str(listed)
    shown = {r["HOST"]: r for r in listed_table.table()}
    assert [r["LAST CHECK"] for r in shown.values()] == ["up"] * len(names), str(listed_table)
    assert shown["inner"]["VIA"] == "bastion", str(listed_table)


def test_connection_failures_exit_with_their_class(lab, tmp_path, dp):
    other_key = tmp_path / "other_id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    auth = lab.write_config(
        tmp_path / "auth.toml",
        ["edge"],
        host_auth={"key_files": [str(other_key)], "agent": False},
    )
    # edge is listed with cloud's key (a mismatch); storage is not listed at all (unknown)
    wrong_known_hosts = tmp_path / "known_hosts_wrong"
    wrong_known_hosts.write_text(
        known_hosts_line(lab.edge.address, lab.edge.port, lab.cloud.host_key_pub) + "\n"
    )
    host_keys = lab.write_config(
        tmp_path / "host_keys.toml", ["edge", "storage"], known_hosts=[str(wrong_known_hosts)]
    )
    mixed = lab.write_config(tmp_path / "mixed.toml", ["edge"])
    dead_port = free_port()
    with mixed.open("a") as fh:
        fh.write(
            f'\n[hosts.dead]\naddress = "127.0.0.1"\nport = {dead_port}\n'
            f'[hosts.dead.auth]\nkey_files = ["{lab.client_key}"]\nagent = false\n'
        )

    check = ("hosts", "check", "-o", "json")
    pending = {
        "auth": dp.start(*check, config=auth),
        "host-keys": dp.start(*check, config=host_keys),
        "refused": dp.start(*check, "dead", config=mixed),
        "partial": dp.start(*check, config=mixed),
        "partial-table": dp.start("hosts", "check", config=mixed),
    }
    runs = {name: p.wait() for name, p in pending.items()}

    run = runs["auth"]
    assert run.code == 4, str(run)
    assert_down(run, 4, "edge", "authentication failed", "publickey", retryable=False)

    run = runs["host-keys"]  # both down for the same reason: that reason's exit code
    assert run.code == 5, str(run)
    assert_down(run, 5, "edge", "HOST KEY MISMATCH", "nothing was sent", retryable=False)
    assert_down(run, 5, "storage", "unknown host key", "nothing was sent", retryable=False)
    assert len(run.errors) == 2, str(run)
    assert not (dp.home / "state" / "known_hosts").exists()  # strict records nothing

    run = runs["refused"]
    assert run.code == 6, str(run)
    assert [r["name"] for r in run.json()] == ["dead"]
    assert_down(run, 6, "dead", "connection refused", str(dead_port), retryable=True)

    run = runs["partial"]
    assert run.code == 9, str(run)
    good, bad = run.json()
    assert good["name"] == "edge" and good["reachable"] is True and good["exit_code"] == 0
    assert good["error"] is None and good["auth_method"] == "publickey"
    assert bad["name"] == "dead"
    assert_down(run, 6, "dead", "connection refused", retryable=True)
    assert len(run.errors) == 1, str(run)

    table = runs["partial-table"]
    assert table.code == 9, str(table)
    assert table.error.startswith("dead: connection refused"), str(table)
    up, down = table.table()
    assert (up["HOST"], up["STATUS"], up["ERROR"]) == ("edge", "up", ""), str(table)
    assert (down["HOST"], down["STATUS"], down["TOOLS"]) == ("dead", "DOWN", "-"), str(table)
    assert "refused" in down["ERROR"], str(table)


@pytest.mark.netns
def test_cut_link_is_a_retryable_network_error(lab, lab_config, dp):
    dp.config = lab_config
    lab.cut("cloud")
    run = dp("hosts", "check", "cloud", "--timeout", "1", "-o", "json")
    assert run.code == 6, str(run)
    assert_down(run, 6, "cloud", "timed out", "after 1s", retryable=True)
    listed = dp("hosts", "list", "-o", "json")
    entries = {h["name"]: h for h in listed.json()}
    assert entries["cloud"]["reachable"] is False and entries["cloud"]["last_seen"] is None
    assert entries["edge"]["reachable"] is None  # never checked


# -- usage and config errors (no connection is made) ------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(args, named, id=" ".join(args))
        for args, named in [
            (["hosts", "frob"], ["frob"]),
            (["hosts", "frob", "-o", "json"], ["frob"]),
            (["hosts", "list", "--outptu", "json", "-o", "json"], ["--outptu"]),
            (["hosts", "list", "-o", "xml"], ["--output", "'xml'"]),
            (["hosts", "check", "nosuchhost"], ["nosuchhost", "known: edge, cloud"]),
            (["hosts", "check", "edge", "nosuchhost", "-o", "json"], ["nosuchhost"]),
            (["hosts", "check", "--timeout", "0", "-o", "json"], ["--timeout"]),
            (["hosts"], ["difpipe hosts", "action"]),
        ]
    ],
)
def test_usage_errors_exit_2(dp, static_config, args, named):
    run = dp(*args, config=static_config)
    doc = assert_failed(run, 2, "usage", *named)
    if "nosuchhost" in args and doc:
        assert doc["host"] == "nosuchhost", str(run)


def _break(path: Path, kind: str) -> tuple[str, list[str]]:
    text = path.read_text()
    if kind == "port":
        path.write_text(
            text.replace('address = "192.0.2.10"\n', 'address = "192.0.2.10"\nport = "22a"\n')
        )
        return "hosts.edge.port", ["hosts.edge.port", 'expected an integer, got "22a"']
    path.write_text(text + '\n[hosts.edge.auth]\npassword = "hunter2-in-clear"\n')
    return "hosts.edge.auth.password", ["hosts.edge", "password_env", "password_command"]


@pytest.mark.parametrize("kind", ["port", "password"])
def test_config_errors_exit_3_with_the_key_path(dp, static_config, kind):
    key, named = _break(static_config, kind)
    dp.config = static_config
    pending = [
        dp.start("hosts", "check", "-o", "json"),
        dp.start("config", "validate"),
        dp.start("config", "validate", "-o", "yaml"),
    ]
    check, validate, validate_yaml = runs = [p.wait() for p in pending]
    for run in runs:
        assert "hunter2" not in run.stdout + run.stderr, str(run)
    doc = assert_failed(check, 3, "config", *named)
    assert (doc["key"], doc["host"], doc["path"]) == (key, "edge", str(static_config)), str(check)
    assert_failed(validate, 3, "config", *named)
    assert validate_yaml.code == 3, str(validate_yaml)
    assert validate_yaml.yaml() == doc, str(validate_yaml)


# -- import-ssh-config ------------------------------------------------------------------------


def test_import_into_a_new_config_then_again(tmp_path, dp, ssh_config):
    config = tmp_path / "conf" / "difpipe.toml"  # neither the file nor its directory exists
    dp.config = config
    first = dp("hosts", "import-ssh-config", ssh_config)
    assert first.code == 0 and first.errors == [], str(first)
    wildcard = [line for line in first.stderr.splitlines() if "wildcard" in line]
    assert len(wildcard) == 2, str(first)
    assert "Host '*'" in wildcard[0] and "Host '*.corp'" in wildcard[1], str(first)
    assert "2 added, 0 replaced, 0 skipped" in first.stdout, str(first)
    assert config.stat().st_mode & 0o777 == 0o600

    hosts = tomllib.loads(config.read_text())["hosts"]
    assert list(hosts) == ["jumpbox", "app1"]
    jumpbox, app1 = hosts["jumpbox"], hosts["app1"]
    assert (jumpbox["address"], jumpbox["port"], jumpbox["user"]) == ("203.0.113.5", 2222, "ops")
    assert jumpbox["role"] == "bastion" and jumpbox["auth"]["key_files"] == ["~/.ssh/id_jump"]
    assert (app1["address"], app1.get("port", 22), app1["user"]) == ("10.20.0.7", 22, "deploy")
    assert app1["jump"] == ["jumpbox"] and app1["auth"]["key_files"] == ["~/.ssh/id_app"]

    validate = dp.start("config", "validate", "-o", "json")
    listed = dp.start("hosts", "list", "-o", "json")
    validate, listed = validate.wait(), listed.wait()
    assert validate.code == 0, str(validate)
    assert validate.json() == {"valid": True, "path": str(config), "hosts": 2}
    entries = {h["name"]: h for h in listed.json()}
    assert entries["app1"]["jump"] == ["jumpbox"] and entries["app1"]["reachable"] is None

    before = config.read_bytes()
    again = dp("hosts", "import-ssh-config", ssh_config, "-o", "json")
    assert again.code == 0, str(again)
    assert [(r["name"], r["action"]) for r in again.json()] == [
        ("jumpbox", "skip"),
        ("app1", "skip"),
    ]
    for name in ("jumpbox", "app1"):
        assert f"skipped Host {name}: already in {config} (use --overwrite)" in again.stderr
    assert config.read_bytes() == before

    ssh_config.write_text(SSH_CONFIG.replace("Port 2222", "Port 2200"))
    replaced = dp("hosts", "import-ssh-config", ssh_config, "--overwrite", "-o", "json")
    assert replaced.code == 0, str(replaced)
    assert {r["action"] for r in replaced.json()} == {"replace"}
    hosts = tomllib.loads(config.read_text())["hosts"]
    assert hosts["jumpbox"]["port"] == 2200 and hosts["app1"]["jump"] == ["jumpbox"]


def test_import_keeps_the_other_hosts_and_dry_run_writes_nothing(tmp_path, dp, ssh_config):
    config = tmp_path / "difpipe.toml"
    config.write_text(EXISTING_CONFIG)
    before = tomllib.loads(EXISTING_CONFIG)
    dp.config = config

    dry = dp.start("hosts", "import-ssh-config", ssh_config, "--dry-run")
    dry_json = dp.start("hosts", "import-ssh-config", ssh_config, "--dry-run", "-o", "json")
    dry, dry_json = dry.wait(), dry_json.wait()
    for run in (dry, dry_json):
        assert run.code == 0 and run.errors == [], str(run)
    assert [(r["HOST"], r["WOULD"]) for r in dry.table()] == [("jumpbox", "add"), ("app1", "add")]
    assert "added" not in dry.stdout, str(dry)
    assert [r["action"] for r in dry_json.json()] == ["add", "add"]
    assert config.read_text() == EXISTING_CONFIG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["difpipe.toml", "home", "ssh_config"]

    run = dp("hosts", "import-ssh-config", ssh_config)
    assert run.code == 0 and "2 added, 0 replaced, 0 skipped" in run.stdout, str(run)
    after = tomllib.loads(config.read_text())
    assert after["defaults"] == before["defaults"]
    assert after["hosts"]["other"] == before["hosts"]["other"]
    assert list(after["hosts"]) == ["other", "jumpbox", "app1"]
    validate = dp("config", "validate")
    assert validate.code == 0 and f"{config}: valid (3 hosts)" in validate.stdout, str(validate)


def test_a_failed_save_exits_3_and_leaves_the_file_alone(tmp_path, dp, ssh_config):
    directory = tmp_path / "is-a-directory.toml"
    directory.mkdir()
    (directory / "inside").write_text("kept\n")
    regular = tmp_path / "regular-file"
    regular.write_text("not a directory\n")
    limited = tmp_path / "limited" / "difpipe.toml"
    limited.parent.mkdir()
    limited.write_text(EXISTING_CONFIG)
    size = limited.stat().st_size

    args = ("hosts", "import-ssh-config", ssh_config, "-o", "json")
    pending = {
        directory: dp.start(*args, config=directory),
        regular / "difpipe.toml": dp.start(*args, config=regular / "difpipe.toml"),
        limited: dp.start(
            *args,
            config=limited,
            command=[sys.executable, "-c", FSIZE_LIMITED, str(size), str(DIFPIPE)],
        ),
    }
    runs = {path: p.wait() for path, p in pending.items()}
    for path, run in runs.items():
        assert_failed(run, 3, "config", str(path))
    assert "cannot write the config" in runs[limited].error
    assert limited.read_text() == EXISTING_CONFIG
    assert [p.name for p in limited.parent.iterdir()] == ["difpipe.toml"]  # no temp file left
    assert [p.name for p in directory.iterdir()] == ["inside"]
    assert regular.read_text() == "not a directory\n"


# -- config path / schema, version ------------------------------------------------------------


def test_config_path_precedence(tmp_path, dp):
    user_home = dp.home / "user"
    explicit, from_env, xdg = tmp_path / "explicit.toml", tmp_path / "env.toml", tmp_path / "xdg"
    everything = {"DIFPIPE_CONFIG": str(from_env), "XDG_CONFIG_HOME": str(xdg)}
    cases = [
        (explicit, everything, explicit),
        (Path("~/mine.toml"), {}, user_home / "mine.toml"),
        (None, everything, from_env),
        (None, {"XDG_CONFIG_HOME": str(xdg)}, dp.home / "difpipe.toml"),
        (None, {"DIFPIPE_HOME": None, "XDG_CONFIG_HOME": str(xdg)}, xdg / "difpipe/difpipe.toml"),
        (
            None,
            {"DIFPIPE_HOME": None, "XDG_CONFIG_HOME": "relative/ignored"},
            user_home / ".config/difpipe/difpipe.toml",
        ),
        (None, {"DIFPIPE_HOME": None}, user_home / ".config/difpipe/difpipe.toml"),
    ]
    pending = [(dp.start("config", "path", config=c, env=env), want) for c, env, want in cases]
    for p, want in pending:
        run = p.wait()
        assert run.code == 0 and run.stderr == "", str(run)
        assert run.stdout == f"{want}\n", str(run)


def test_schema_and_version(dp):
    schema = dp.start("config", "schema", config=False)
    version = dp.start("--version", config=False)
    module = dp.start("--version", config=False, command=[sys.executable, "-m", "difpipe_tui"])
    schema, version, module = schema.wait(), version.wait(), module.wait()
    for run in (schema, version, module):
        assert run.code == 0 and run.stderr == "", str(run)
    doc = schema.json()
    assert doc["$schema"].startswith("https://json-schema.org/")
    assert doc["properties"]["hosts"]["additionalProperties"] == {"$ref": "#/$defs/host"}
    assert doc["$defs"]["host"]["required"] == ["address"]
    assert version.stdout == module.stdout == f"difpipe {difpipe_tui.__version__}\n"
