"""The lab is real: OpenSSH's own client reaches every host, and every fault helper bites."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncssh
import pytest

from tests.lab import HOST_NAMES, DelayProxy, Lab, LabHost, remove_stale
from tests.lab.system import pid_alive

PAYLOAD_BYTES = 4_000_000


def ssh_options(lab: Lab) -> list[str]:
    """OpenSSH client options from the lab's key and known_hosts alone, no config file."""
    settings = {
        "IdentitiesOnly": "yes",
        "UserKnownHostsFile": lab.known_hosts,
        "GlobalKnownHostsFile": "none",
        "StrictHostKeyChecking": "yes",
        "BatchMode": "yes",
    }
    argv = ["-F", "none", "-i", str(lab.client_key)]
    for key, value in settings.items():
        argv += ["-o", f"{key}={value}"]
    return argv


def ssh(
    lab: Lab,
    address: str,
    port: int,
    *command: str,
    options: tuple[str, ...] = (),
    stdin: int | None = subprocess.DEVNULL,
    timeout: float = 30,
    user: str | None = None,
) -> subprocess.CompletedProcess[str]:
    argv = ["ssh", *options, *ssh_options(lab), "-p", str(port), "-l", user or lab.user]
    return subprocess.run(
        [*argv, address, *command], stdin=stdin, capture_output=True, text=True, timeout=timeout
    )


def ssh_host(lab: Lab, name: str, *command: str, **kwargs) -> subprocess.CompletedProcess[str]:
    host = lab.hosts[name]
    return ssh(lab, host.address, host.port, *command, **kwargs)


def push_zeros(lab: Lab, address: str, port: int) -> float:
    """Seconds for ``head -c 4000000 /dev/zero | ssh HOST 'cat > /dev/null'``."""
    ssh_argv = ["ssh", *ssh_options(lab), "-p", str(port), "-l", lab.user, address]
    started = time.monotonic()
    head = subprocess.Popen(["head", "-c", str(PAYLOAD_BYTES), "/dev/zero"], stdout=subprocess.PIPE)
    assert head.stdout is not None
    with head:
        result = subprocess.run(
            [*ssh_argv, "cat > /dev/null"],
            stdin=head.stdout,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    return time.monotonic() - started


def via_bastion(lab: Lab) -> tuple[str, ...]:
    """Reach a host behind the bastion with an explicit ProxyCommand (no lab ssh_config)."""
    bastion = lab.bastion
    hop = ["ssh", *ssh_options(lab), "-p", str(bastion.port), "-l", lab.user, "-W", "%h:%p"]
    return ("-o", f"ProxyCommand={' '.join(hop)} {bastion.address}")


def test_every_direct_host_runs_a_command(lab: Lab) -> None:
    direct = [name for name in HOST_NAMES if not lab.hosts[name].jump]
    assert direct == ["edge", "cloud", "storage", "bastion"]
    with ThreadPoolExecutor(len(direct)) as pool:
        results = dict(
            zip(direct, pool.map(lambda n: ssh_host(lab, n, "echo ok"), direct), strict=True)
        )
    for name, result in results.items():
        assert (result.returncode, result.stdout) == (0, "ok\n"), f"{name}: {result.stderr}"
        assert f"Accepted publickey for {lab.user}" in lab.hosts[name].log_path.read_text()
    assert len({host.host_key_pub for host in lab.hosts.values()}) == len(lab.hosts)


def test_a_session_starts_in_the_hosts_own_empty_home(lab: Lab) -> None:
    """Not the home of the user running the tests: its shell startup files (root's
    ``.bashrc`` runs ``pyenv init`` on these machines) would run before every remote command."""
    for name in ("edge", "cloud"):
        result = ssh_host(lab, name, 'printf "%s\\n" "$HOME"; ls -A "$HOME"')
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{lab.hosts[name].home}\n", result.stdout
    assert lab.hosts["edge"].home != lab.hosts["cloud"].home


@pytest.mark.netns
def test_each_host_has_its_own_namespace(lab: Lab) -> None:
    result = ssh_host(lab, "cloud", "ip -o -4 addr show dev eth0")
    assert result.returncode == 0, result.stderr
    assert f"inet {lab.cloud.address}/24" in result.stdout
    assert lab.cloud.namespace == f"{lab.prefix}-cloud"
    assert lab.gateway == f"{lab.subnet.rsplit('.', 1)[0]}.1"


def test_inner_is_reached_through_bastion(lab: Lab) -> None:
    inner = lab.inner
    assert inner.jump == "bastion"
    jump_argv = lab.ssh_argv("inner", "echo ok")
    assert jump_argv[jump_argv.index("-J") + 1] == "bastion"
    with ThreadPoolExecutor(2) as pool:
        # ssh -J, whose hop reads the lab's ssh_config; and a hand-made ProxyCommand hop.
        jumped = pool.submit(
            subprocess.run,
            jump_argv,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        proxied = pool.submit(
            ssh, lab, inner.address, inner.port, "echo ok", options=via_bastion(lab)
        )
    for result in (jumped.result(), proxied.result()):
        assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
    if lab.netns:
        bastion_private = lab.private_subnet.rsplit(".", 1)[0] + ".1"
        assert f"Connection from {bastion_private}" in inner.log_path.read_text()


@pytest.mark.netns
def test_inner_is_unreachable_directly(lab: Lab) -> None:
    assert lab.isolated
    inner = lab.inner
    route = subprocess.run(["ip", "route", "get", inner.address], capture_output=True, text=True)
    assert route.returncode != 0 or "unreachable" in route.stdout, route.stdout
    started = time.monotonic()
    result = ssh(lab, inner.address, inner.port, "true", options=("-o", "ConnectTimeout=3"))
    assert result.returncode == 255
    assert "No route to host" in result.stderr or "unreachable" in result.stderr, result.stderr
    assert time.monotonic() - started < 5
    # And the bastion is no router: forwarding is off in its namespace.
    forward = subprocess.run(
        ["ip", "netns", "exec", lab.bastion.namespace, "cat", "/proc/sys/net/ipv4/ip_forward"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert forward.stdout.strip() == "0"


@pytest.mark.netns
def test_cut_partitions_and_heal_restores(lab: Lab) -> None:
    lab.cut("edge")
    assert "edge" in lab.touched
    started = time.monotonic()
    result = ssh_host(lab, "edge", "true", options=("-o", "ConnectTimeout=1"), timeout=15)
    assert result.returncode == 255, result.stderr
    assert time.monotonic() - started < 10
    assert ssh_host(lab, "cloud", "true").returncode == 0, "a cut must not touch other hosts"
    lab.heal("edge")
    assert "edge" not in lab.touched
    result = ssh_host(lab, "edge", "echo ok")
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


@pytest.mark.netns
def test_cap_limits_bandwidth(lab: Lab) -> None:
    storage = lab.storage
    uncapped = push_zeros(lab, storage.address, storage.port)
    lab.cap("storage", "8mbit")
    capped = push_zeros(lab, storage.address, storage.port)
    # 4 MB at 8 Mbit/s is 4 s on the wire; the token bucket's burst shaves a little off.
    assert capped >= 3.0, f"capped transfer took {capped:.2f} s"
    assert uncapped < capped / 2, f"uncapped {uncapped:.2f} s vs capped {capped:.2f} s"
    lab.heal("storage")
    qdisc = subprocess.run(
        ["tc", "-n", storage.namespace, "qdisc", "show", "dev", "eth0"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "tbf" not in qdisc.stdout


@pytest.mark.netns
def test_drop_loses_packets_but_tcp_recovers(lab: Lab) -> None:
    bastion = lab.bastion
    control = lab.workdir / "drop-test.ctl"
    base = ["ssh", *ssh_options(lab), "-S", str(control), "-p", str(bastion.port), "-l", lab.user]
    master = subprocess.Popen(
        [*base, "-M", "-N", bastion.address],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not control.exists():
            assert master.poll() is None, master.communicate()[1]
            assert time.monotonic() < deadline, "the ssh master connection did not come up"
            time.sleep(0.02)

        lab.drop("bastion", 30)
        assert "numgen random mod 100 < 30" in lab.nft_ruleset("bastion")
        # 200 datagrams in: about 60 dropped; the bounds are many standard deviations wide.
        before = _dropped_inbound(lab.nft_ruleset("bastion"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for _ in range(200):
                udp.sendto(b"x", (bastion.address, 9))
        dropped = _dropped_inbound(lab.nft_ruleset("bastion")) - before
        assert 25 <= dropped <= 100, f"{dropped} of 200 datagrams dropped at 30 %"

        # The established connection rides the loss out on TCP retransmits.
        result = subprocess.run(
            [*base, bastion.address, "echo ok"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
    finally:
        # Heal first: ssh's goodbye to the server must not wait out retransmits.
        lab.heal("bastion")
        master.terminate()
        try:
            master.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            master.kill()
            master.communicate()
    assert "difpipe_lab" not in lab.nft_ruleset("bastion")


def _dropped_inbound(ruleset: str) -> int:
    chain = ruleset.split("chain input", 1)[1].split("}", 1)[0]
    return int(re.search(r"counter packets (\d+)", chain)[1])


def test_delay_proxy_slows_ssh_down(lab: Lab) -> None:
    edge = lab.edge
    started = time.monotonic()
    assert ssh(lab, edge.address, edge.port, "true").returncode == 0
    direct = time.monotonic() - started

    host, port = lab.delay_proxy("edge", 100)
    assert host == "127.0.0.1"
    # known_hosts names the proxy with the edge's key, so strict checking still holds.
    assert f"[{host}]:{port} {edge.host_key_pub.split()[0]}" in lab.known_hosts.read_text()
    started = time.monotonic()
    result = ssh(lab, host, port, "true")
    proxied = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # TCP connect, key exchange, auth and the session take several round trips of 200 ms.
    assert proxied >= 0.4, f"{proxied:.2f} s through a 100 ms proxy"
    assert proxied > direct + 0.3

    lab.heal("edge")
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=1).close()
    assert f"[{host}]:{port}" not in lab.known_hosts.read_text()


def test_delay_proxy_keeps_order_and_throughput() -> None:
    """Each byte is late by the delay, but 8 MB do not pay one delay per chunk."""
    payload = os.urandom(8 * 1024 * 1024)
    with socket.create_server(("127.0.0.1", 0)) as server:
        echo = threading.Thread(target=_echo_once, args=(server,), daemon=True)
        echo.start()
        with (
            DelayProxy(server.getsockname()[:2], delay=0.1) as proxy,
            socket.create_connection(proxy.address, timeout=10) as client,
        ):
            started = time.monotonic()
            client.sendall(b"x")
            assert client.recv(1) == b"x"
            round_trip = time.monotonic() - started

            received = bytearray()
            sender = threading.Thread(target=client.sendall, args=(payload,), daemon=True)
            started = time.monotonic()
            sender.start()
            while len(received) < len(payload):
                chunk = client.recv(1 << 20)
                assert chunk, "the proxy closed early"
                received += chunk
            elapsed = time.monotonic() - started
            sender.join()
    assert round_trip >= 0.2, f"round trip {round_trip:.3f} s through 2 x 100 ms"
    assert bytes(received) == payload
    # A proxy that slept 100 ms per 64 KiB chunk in turn would need over 12 s here.
    assert elapsed < 2.5, f"8 MB took {elapsed:.2f} s"


def _echo_once(server: socket.socket) -> None:
    conn, _ = server.accept()
    with conn:
        while data := conn.recv(1 << 16):
            conn.sendall(data)


async def test_password_user_logs_in_with_a_password_only(lab: Lab) -> None:
    if lab.password_user is None:
        pytest.skip("the password user needs root to be created")
    edge = lab.edge
    async with password_login(lab, edge, lab.password) as conn:
        result = await conn.run("id -un", check=True)
    assert result.stdout.strip() == lab.password_user
    assert f"Accepted password for {lab.password_user}" in edge.log_path.read_text()

    refused = ssh_host(
        lab,
        "edge",
        "true",
        user=lab.password_user,
        options=("-o", "PreferredAuthentications=publickey"),
    )
    assert refused.returncode == 255
    assert "Permission denied" in refused.stderr

    with pytest.raises(asyncssh.PermissionDenied):
        await password_login(lab, edge, "wrong")


def password_login(lab: Lab, host: LabHost, password: str | None) -> asyncssh.SSHClientConnection:
    """asyncssh with nothing but a password: no keys, no agent, no ~/.ssh/config."""
    return asyncssh.connect(
        host.address,
        port=host.port,
        username=lab.password_user,
        password=password,
        known_hosts=str(lab.known_hosts),
        client_keys=None,
        agent_path=None,
        config=None,
        preferred_auth="password",
    )


def test_ssh_agent_holds_the_client_key(lab: Lab, ssh_agent: str) -> None:
    assert os.environ.get("SSH_AUTH_SOCK") != ssh_agent
    env = {**os.environ, "SSH_AUTH_SOCK": ssh_agent}
    listed = subprocess.run(["ssh-add", "-l"], env=env, capture_output=True, text=True, timeout=10)
    assert listed.returncode == 0, listed.stderr
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", f"{lab.client_key}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert fingerprint in listed.stdout

    # Log in with the agent's key: no -i, and the key file is not where ssh would look.
    edge = lab.edge
    argv = ["ssh", "-F", "none", "-v", "-o", f"IdentityAgent={ssh_agent}"]
    argv += ["-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    argv += ["-o", "BatchMode=yes", "-p", str(edge.port), "-l", lab.user, edge.address, "true"]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr
    accepted = [line for line in result.stderr.splitlines() if "Server accepts key" in line]
    assert accepted and "agent" in accepted[0]


def test_write_config_describes_the_lab(lab: Lab, tmp_path: Path) -> None:
    path = lab.write_config(tmp_path / "difpipe.toml")
    text = path.read_text()
    assert f'key_files = ["{lab.client_key}"]\n' in text
    assert 'jump = ["bastion"]\n' in text
    config = tomllib.loads(text)
    assert config["defaults"] == {
        "user": lab.user,
        "known_hosts": [str(lab.known_hosts)],
        "host_key_policy": "strict",
        "connect_timeout": 5.0,
    }
    assert list(config["hosts"]) == list(HOST_NAMES)
    edge = config["hosts"]["edge"]
    assert edge == {
        "address": lab.edge.address,
        "port": lab.edge.port,
        "role": "edge",
        "auth": {"key_files": [str(lab.client_key)], "agent": False},
    }
    assert config["hosts"]["inner"]["jump"] == ["bastion"]
    assert config["hosts"]["inner"]["role"] == "other"

    subset = tomllib.loads(
        lab.write_config(
            tmp_path / "subset.toml",
            hosts=["inner"],
            host_key_policy="accept-new",
            connect_timeout=None,
        ).read_text()
    )
    assert list(subset["hosts"]) == ["bastion", "inner"]
    assert subset["defaults"]["host_key_policy"] == "accept-new"
    assert "connect_timeout" not in subset["defaults"]

    agent = {"agent": True, "agent_path": "/run/agent.sock"}
    by_agent = tomllib.loads(lab.write_config(tmp_path / "agent.toml", host_auth=agent).read_text())
    assert {host["auth"]["agent_path"] for host in by_agent["hosts"].values()} == {
        "/run/agent.sock"
    }


def test_known_hosts_names_every_host(lab: Lab) -> None:
    lines = lab.known_hosts.read_text().splitlines()
    assert len(lines) == len(lab.hosts)
    for host, line in zip(lab.hosts.values(), lines, strict=True):
        name = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
        assert line.split()[0] == name
        assert line.split()[1:3] == host.host_key_pub.split()[:2]


def test_teardown_removes_everything() -> None:
    small = Lab.start(["edge"])
    edge = small.edge
    pid = edge.pid
    assert pid is not None and pid_alive(pid)
    assert small.workdir.is_dir()
    reached = subprocess.run(small.ssh_argv("edge", "true"), capture_output=True, timeout=30)
    assert reached.returncode == 0, reached.stderr
    links_before = _links_named(small.prefix)
    if small.netns:
        assert edge.namespace in _namespaces()
        assert f"{small.prefix}br" in links_before
        assert any(name.startswith(f"{small.prefix}v") for name in links_before)
    small.close()
    assert not pid_alive(pid)
    assert not small.workdir.exists()
    assert not _links_named(small.prefix)
    assert not [ns for ns in _namespaces() if ns.startswith(small.prefix)]
    if small.password_user:
        assert subprocess.run(["id", small.password_user], capture_output=True).returncode != 0
    if small.private_subnet:
        routes = subprocess.run(
            ["ip", "route", "show", small.private_subnet],
            capture_output=True,
            text=True,
            check=True,
        )
        assert routes.stdout.strip() == ""


def test_loopback_fallback() -> None:
    with Lab.start(["edge"], netns=False, password_user=False) as small:
        assert not small.netns and not small.isolated
        assert small.edge.address == "127.0.0.1" and small.edge.port != 22
        assert small.edge.namespace is None
        assert small.known_hosts.read_text().startswith(f"[127.0.0.1]:{small.edge.port} ")
        result = ssh_host(small, "edge", "echo ok")
        assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
        with pytest.raises(pytest.skip.Exception, match="network namespaces"):
            small.cut("edge")


@pytest.mark.netns
def test_leftovers_of_a_crashed_run_are_removed(lab: Lab) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    prefix = f"dpl{finished.pid}q"
    subprocess.run(["ip", "netns", "add", f"{prefix}-edge"], check=True)
    subprocess.run(["ip", "link", "add", f"{prefix}br", "type", "bridge"], check=True)
    workdir = Path(lab.workdir.parent, f"{prefix}-abcdefgh")
    workdir.mkdir()
    (workdir / ".difpipe-lab").write_text("")
    stranger = Path(lab.workdir.parent, f"{prefix}-unmarked")
    stranger.mkdir()
    try:
        removed = remove_stale()
        assert f"{prefix}-edge" in removed and f"{prefix}br" in removed
        assert str(workdir) in removed
        assert f"{prefix}-edge" not in _namespaces()
        assert not _links_named(prefix)
        assert not workdir.exists()
        assert stranger.exists(), "only directories the lab marked are removed"
        assert lab.edge.pid is not None and pid_alive(lab.edge.pid), "a live lab stays"
    finally:
        stranger.rmdir()
        subprocess.run(["ip", "netns", "del", f"{prefix}-edge"], capture_output=True)
        subprocess.run(["ip", "link", "del", f"{prefix}br"], capture_output=True)


def _links_named(prefix: str) -> list[str]:
    listing = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True)
    links = json.loads(listing.stdout)
    return [link["ifname"] for link in links if link["ifname"].startswith(prefix)]


def _namespaces() -> list[str]:
    listing = subprocess.run(
        ["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return [entry["name"] for entry in json.loads(listing or "[]")]
