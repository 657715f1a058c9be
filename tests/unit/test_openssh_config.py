"""The ssh_config, askpass helper and error mapping of the OpenSSH legs (no sshd needed)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from difpipe_tui.core.config import Auth, Config, Defaults, Host
from difpipe_tui.core.errors import AuthError, ConfigError, HostKeyError, NetworkError
from difpipe_tui.core.transfer import openssh
from difpipe_tui.core.transfer.openssh import OpenSSHContext, ssh_available

needs_ssh = pytest.mark.skipif(ssh_available() is None, reason="needs the OpenSSH client")


def make_config(*hosts: Host, **defaults) -> Config:
    base = {"user": "deploy", "known_hosts": ("/etc/difpipe/kh",), "connect_timeout": 4.5}
    return Config(hosts={h.name: h for h in hosts}, defaults=Defaults(**{**base, **defaults}))


@pytest.fixture
def contexts():
    made: list[OpenSSHContext] = []

    def make(config: Config, known: Path, **kw) -> OpenSSHContext:
        ctx = OpenSSHContext(config, known, **kw)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx._finalizer()


def effective(ctx: OpenSSHContext, name: str) -> dict[str, str]:
    """``ssh -G``: the settings ssh really uses for a host of the generated file."""
    out = subprocess.run(
        [ctx.ssh, "-G", "-F", str(ctx.config_file), ctx.alias(name)],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    values: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key, value)
        if key == "identityfile":
            values.setdefault("identityfiles", "")
            values["identityfiles"] += value + "\n"
    return values


@needs_ssh
def test_every_host_gets_a_block_that_ssh_reads_as_meant(contexts, tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    key = tmp_path / "keys dir" / "id #1 100%"
    config = make_config(
        Host("gate", "gw.example.net", port=2222, auth=Auth(key_files=(str(key),), agent=False)),
        Host("mid", "10.0.0.2", user="ops", auth=Auth(agent=False)),
        Host(
            "deep",
            "fd00::7",
            jump=("gate", "mid"),
            host_key_policy="accept-new",
            keepalive_interval=2.5,
            keepalive_count_max=5,
            auth=Auth(key_files=(str(key),), agent=False),
        ),
    )
    own = tmp_path / "own known_hosts"
    ctx = contexts(config, own)
    assert all(ctx.supports(n) for n in ("gate", "mid", "deep")), ctx.unsupported
    text = ctx.config_file.read_text()
    gate = effective(ctx, "gate")
    assert (gate["hostname"], gate["port"], gate["user"]) == ("gw.example.net", "2222", "deploy")
    assert f'IdentityFile "{str(key).replace("%", "%%")}"' in text
    assert gate["identitiesonly"] == "yes" and gate["identityagent"] == "none"
    assert gate["stricthostkeychecking"] == "true"
    assert gate["batchmode"] == "yes" and gate["passwordauthentication"] == "no"
    assert gate["ciphers"].startswith("aes128-gcm@openssh.com,chacha20-poly1305@openssh.com")
    assert gate["compression"] == "no" and gate["loglevel"] == "ERROR"
    assert gate["controlmaster"] == "auto" and gate["controlpersist"] == "60"
    assert gate["controlpath"].startswith(str(ctx.dir))
    assert gate["globalknownhostsfile"] == "/dev/null"
    # DifPipe's own file first: OpenSSH records accept-new keys in the first file.
    assert gate["userknownhostsfile"].startswith(f"{own} /etc/difpipe/kh ")
    assert gate["connecttimeout"] == "5" and gate["serveraliveinterval"] == "15"

    mid = effective(ctx, "mid")
    assert mid["user"] == "ops"
    # No key files: never the default ~/.ssh/id_* (a missing file stands in), agent off.
    assert mid["identityfiles"].strip() == str(ctx.dir / "no-key-files")

    deep = effective(ctx, "deep")
    assert deep["hostname"] == "fd00::7"
    assert deep["proxyjump"] == "difpipe+gate,difpipe+mid"
    assert deep["stricthostkeychecking"] == "accept-new"
    assert (deep["serveraliveinterval"], deep["serveralivecountmax"]) == ("3", "5")
    assert deep["controlpath"] != gate["controlpath"]
    # Each hop has its own block, without a master or a jump of its own.
    for hop in ("difpipe+gate", "difpipe+mid"):
        assert f"Host {hop}\n" in text
    hop = subprocess.run(
        [ctx.ssh, "-G", "-F", str(ctx.config_file), "difpipe+mid"],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    assert "controlmaster false" in hop and "controlpath" not in hop
    assert "proxyjump" not in hop and "user ops" in hop


@needs_ssh
def test_agent_settings_mirror_the_pool(contexts, tmp_path, monkeypatch):
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/agent.sock")
    config = make_config(
        Host("env-agent", "a1"),
        Host("own-agent", "a2", auth=Auth(agent_path="/run/my agent")),
        Host("key-and-agent", "a3", auth=Auth(key_files=("/k",))),
        Host("key-only", "a4", auth=Auth(key_files=("/k",), agent=False)),
    )
    ctx = contexts(config, tmp_path / "kh")
    assert effective(ctx, "env-agent")["identityagent"] == "/run/agent.sock"
    assert effective(ctx, "own-agent")["identityagent"] == "/run/my agent"
    both = effective(ctx, "key-and-agent")
    # The pool offers the key files, then every agent key: so does ssh with IdentitiesOnly no.
    assert both["identitiesonly"] == "no" and both["identityfiles"].strip() == "/k"
    assert effective(ctx, "key-only")["identitiesonly"] == "yes"
    monkeypatch.delenv("SSH_AUTH_SOCK")
    ctx2 = contexts(make_config(Host("env-agent", "a1")), tmp_path / "kh")
    assert effective(ctx2, "env-agent")["identityagent"] == "none"


def test_values_that_ssh_config_cannot_carry_make_the_host_unsupported(contexts, tmp_path):
    config = make_config(
        Host("ok", "10.0.0.1"),
        Host("newline-user", "10.0.0.2", user="bob\nProxyCommand touch /tmp/pwned"),
        Host("quote-key", "10.0.0.3", auth=Auth(key_files=('/k"ey',))),
        Host("env-key", "10.0.0.4", auth=Auth(key_files=("${HOME}/k",))),
        Host("behind-bad", "10.0.0.5", jump=("quote-key",)),
        Host("bad-address", "-oProxyCommand=x"),
    )
    ctx = contexts(config, tmp_path / "kh")
    assert ctx.supports("ok")
    assert not ctx.supports("nope") and ctx.why_not("nope") == "no such host in the config"
    reasons = ctx.unsupported
    assert set(reasons) == {"newline-user", "quote-key", "env-key", "behind-bad", "bad-address"}
    assert "newline" in reasons["newline-user"]
    assert "double quote" in reasons["quote-key"]
    assert "${" in reasons["env-key"]
    assert reasons["behind-bad"].startswith("jump host quote-key:")
    text = ctx.config_file.read_text()
    assert "ProxyCommand" not in text and "pwned" not in text
    with pytest.raises(ConfigError, match="cannot use OpenSSH"):
        ctx.alias("quote-key")


def test_without_the_ssh_client_nothing_is_supported(tmp_path, monkeypatch):
    monkeypatch.setattr(openssh.shutil, "which", lambda name: None)
    assert ssh_available() is None
    ctx = OpenSSHContext(make_config(Host("a", "10.0.0.1")), tmp_path / "kh")
    assert not ctx.supports("a") and "not installed" in ctx.why_not("a")
    assert ctx.dir is None


async def test_private_files_and_close(contexts, tmp_path):
    if ssh_available() is None:
        pytest.skip("needs the OpenSSH client")
    ctx = contexts(make_config(Host("a", "10.0.0.1")), tmp_path / "state" / "kh")
    assert stat.S_IMODE(ctx.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(ctx.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(ctx.askpass.stat().st_mode) == 0o700
    assert (tmp_path / "state").is_dir()  # where accept-new will record keys
    directory = ctx.dir
    await ctx.close()
    assert not directory.exists() and not ctx.supports("a")
    await ctx.close()  # idempotent


async def test_passwords_go_only_to_the_ssh_environment(contexts, tmp_path, monkeypatch):
    if ssh_available() is None:
        pytest.skip("needs the OpenSSH client")
    monkeypatch.setenv("GATE_PW", "gate secret $(x) 'q'")
    monkeypatch.setenv("DEEP_PW", "deep-secret")
    config = make_config(
        Host("gate", "10.0.0.1", user="jumper", auth=Auth(agent=False, password_env="GATE_PW")),
        Host("deep", "10.0.0.9", jump=("gate",), auth=Auth(password_env="DEEP_PW")),
        Host("keyed", "10.0.0.3", auth=Auth(agent=False, key_files=("/k",))),
    )
    ctx = contexts(config, tmp_path / "kh")
    assert ctx.supports("deep")
    text = ctx.config_file.read_text()
    assert "BatchMode no" in text and "PasswordAuthentication yes" in text
    for f in ctx.dir.iterdir():
        assert b"gate secret" not in f.read_bytes() and b"deep-secret" not in f.read_bytes()

    env = await ctx._env("deep")
    assert env["SSH_ASKPASS"] == str(ctx.askpass) and env["SSH_ASKPASS_REQUIRE"] == "force"

    def ask(prompt: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ctx.askpass), prompt], env=env, capture_output=True, text=True, check=False
        )

    # Each hop's prompt gets that hop's password; passphrases and questions get nothing.
    assert ask("jumper@10.0.0.1's password: ").stdout == "gate secret $(x) 'q'\n"
    assert ask("deploy@10.0.0.9's password: ").stdout == "deep-secret\n"
    assert ask("Enter passphrase for key '/k': ").returncode == 1
    assert ask("Are you sure you want to continue connecting (yes/no/[fingerprint])?").returncode
    assert "DIFPIPE_ASKPASS" not in env  # two different passwords: no catch-all

    plain = await ctx._env("keyed")
    assert "SSH_ASKPASS" not in plain and plain["SSH_ASKPASS_REQUIRE"] == "never"
    assert "deep-secret" not in plain.values()
    single = await ctx._env("gate")
    assert single["DIFPIPE_ASKPASS"] == "gate secret $(x) 'q'"
    env = single  # one password in the chain: any password prompt (keyboard-interactive) gets it
    assert ask("Password: ").stdout == "gate secret $(x) 'q'\n"


async def test_missing_password_variable_is_an_auth_error(contexts, tmp_path, monkeypatch):
    if ssh_available() is None:
        pytest.skip("needs the OpenSSH client")
    monkeypatch.delenv("NOT_SET_PW", raising=False)
    config = make_config(Host("a", "10.0.0.1", auth=Auth(password_env="NOT_SET_PW")))
    ctx = contexts(config, tmp_path / "kh")
    with pytest.raises(AuthError, match="NOT_SET_PW"):
        await ctx._env("a")


def test_noexec_directory_refuses_password_hosts(contexts, tmp_path, monkeypatch):
    if ssh_available() is None:
        pytest.skip("needs the OpenSSH client")
    monkeypatch.setattr(openssh, "_noexec", lambda path: True)
    config = make_config(
        Host("pw", "10.0.0.1", auth=Auth(password_env="X")), Host("key", "10.0.0.2")
    )
    ctx = contexts(config, tmp_path / "kh")
    assert not ctx.supports("pw") and "noexec" in ctx.why_not("pw")
    assert ctx.supports("key")


# -- what ssh printed -> which error ------------------------------------------------------------

CHAIN = make_config(
    Host("bastion", "10.77.0.13"),
    Host("inner", "10.78.0.20", jump=("bastion",), auth=Auth(key_files=("/k",))),
)

MISMATCH = """\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
The fingerprint for the ED25519 key sent by the remote host is
SHA256:8mNmT3Dg0Z2TtEtu0cvwYxNVwjC4XrAc2n4bNFBD1Lg.
Host key for 10.78.0.20 has changed and you have requested strict checking.
Host key verification failed.
"""


@pytest.mark.parametrize(
    ("stderr", "kind", "text"),
    [
        (
            MISMATCH,
            HostKeyError,
            "HOST KEY MISMATCH for deploy@10.78.0.20:22: it presented SHA256:",
        ),
        (
            MISMATCH.replace("10.78.0.20", "10.77.0.13"),
            HostKeyError,
            "via jump host bastion: HOST KEY MISMATCH",
        ),
        (
            "No ED25519 host key is known for 10.78.0.20 and you have requested strict checking."
            "\nHost key verification failed.\n",
            HostKeyError,
            "unknown host key for deploy@10.78.0.20:22",
        ),
        (
            "deploy@10.77.0.13: Permission denied (publickey).\n",
            AuthError,
            "via jump host bastion: authentication failed as deploy (tried: agent)",
        ),
        (
            "deploy@10.78.0.20: Permission denied (publickey,password).\n",
            AuthError,
            "authentication failed as deploy (tried: key, agent)",
        ),
        (
            "ssh: connect to host 10.77.0.13 port 22: Connection refused\n",
            NetworkError,
            "via jump host bastion: connection refused",
        ),
        (
            "ssh: Could not resolve hostname nowhere: Name or service not known\n",
            NetworkError,
            "cannot resolve",
        ),
        ("Connection closed by UNKNOWN port 65535\n", NetworkError, "ssh to deploy@10.78.0.20"),
    ],
)
def test_ssh_messages_map_to_the_pools_errors(stderr, kind, text):
    err = openssh._classify_ssh(CHAIN, "inner", stderr, 255)
    assert type(err) is kind
    assert text in err.message
    assert err.host == "inner"
    assert err.retryable == (kind is NetworkError)


def test_forbidden_forwarding_and_no_common_cipher_are_not_retried():
    prohibited = "channel 0: open failed: administratively prohibited: open failed\n"
    err = openssh._classify_ssh(CHAIN, "inner", prohibited, 255)
    assert isinstance(err, NetworkError) and not err.retryable and "AllowTcpForwarding" in str(err)
    cipher = "Unable to negotiate with 10.78.0.20 port 22: no matching cipher found.\n"
    err = openssh._classify_ssh(CHAIN, "inner", cipher, 255)
    assert isinstance(err, NetworkError) and not err.retryable


def test_pipe_size_is_raised_when_allowed():
    child, ours = openssh._make_pipe(feed=True)
    try:
        import fcntl

        size = fcntl.fcntl(ours, 1032)  # F_GETPIPE_SZ
        max_size = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        assert size == min(openssh.PIPE_SIZE, max_size) or os.geteuid() != 0
        assert not os.get_blocking(ours) and os.get_blocking(child)
        assert not os.get_inheritable(ours)
    finally:
        os.close(child)
        os.close(ours)


def test_too_old_openssh_clients_are_not_used(contexts, tmp_path, monkeypatch):
    if ssh_available() is None:
        pytest.skip("needs the OpenSSH client")
    config = make_config(Host("pw", "10.0.0.1", auth=Auth(password_env="X")), Host("key", "h"))
    monkeypatch.setattr(openssh, "_ssh_version", lambda ssh: (7, 4))
    old = contexts(config, tmp_path / "kh")
    assert not old.supports("key") and "7.4" in old.why_not("key") and old.dir is None
    monkeypatch.setattr(openssh, "_ssh_version", lambda ssh: (8, 2))
    no_force = contexts(config, tmp_path / "kh")
    assert no_force.supports("key") and not no_force.supports("pw")
    assert "SSH_ASKPASS_REQUIRE" in no_force.why_not("pw")
