"""Pictures of the Hosts screen, its form and its import preview, from fixed data only, at
120x40 and 80x24 (update: ``pytest tests/tui --snapshot-update``, then look at the SVGs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from difpipe_tui.app import DifpipeApp, build_app
from difpipe_tui.core.store import Store
from tests.tui.helpers import FIXED_SYS, T0

SIZES = [(120, 40), (80, 24)]
IDS = [f"{w}x{h}" for w, h in SIZES]

CONFIG = """
[defaults]
user = "ops"

[hosts.bastion]
address = "203.0.113.5"
role = "bastion"

[hosts.edge-pi]
address = "192.168.40.10"
user = "pi"
role = "edge"
tags = ["site-a"]
jump = ["bastion"]
description = "the Pi at the shop"

[hosts.edge-pi.auth]
key_files = ["~/.ssh/id_ed25519"]

[hosts.cloud]
address = "198.51.100.20"
port = 2222
role = "cloud"

[hosts.backup]
address = "192.0.2.30"
role = "storage"
"""

SSH_CONFIG = """
Host *
    ServerAliveInterval 30

Host nas
    HostName 192.0.2.40
    User admin
    IdentityFile ~/.ssh/nas

Host inner
    HostName 10.0.0.5
    ProxyJump nas

Host cloud
    HostName 198.51.100.20
"""

TOOLS = ["sh", "cat", "dd", "head", "tail", "tee", "stat", "mkdir", "mv", "rm", "df"]


@pytest.fixture
def hosts_app(home: Path, write_config, make_bridge) -> DifpipeApp:
    write_config(CONFIG)
    with Store.open(home / "state" / "state.db") as store:
        store.record_host_status(
            "edge-pi",
            reachable=True,
            latency_ms=3.2,
            os="Linux",
            arch="aarch64",
            tools=dict.fromkeys([*TOOLS, "sha256sum", "zstd", "tar"], True),
            free_bytes=12 * 1024**3,
            checked_at=T0 - 60,
        )
        store.record_host_status(
            "cloud",
            reachable=True,
            latency_ms=21.7,
            os="Linux",
            arch="x86_64",
            tools=dict.fromkeys([*TOOLS, "sha256sum", "zstd", "lz4", "tar", "rsync"], True),
            free_bytes=310 * 1024**3,
            checked_at=T0 - 3600,
        )
        store.record_host_status(
            "backup",
            reachable=False,
            error="backup: connection refused by ops@192.0.2.30:22 (is sshd running?)",
            checked_at=T0 - 30,
        )
    return build_app(bridge=make_bridge(), sysinfo=FIXED_SYS)


async def _hosts(pilot, *keys: str) -> None:
    await pilot.press("h")
    await pilot.app.workers.wait_for_complete()
    await pilot.press(*keys)
    await pilot.app.workers.wait_for_complete()
    for box in pilot.app.screen.query(Input):  # a blinking cursor is a coin toss
        box.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_hosts_screen(snap_compare, hosts_app, size):
    async def run_before(pilot) -> None:
        await _hosts(pilot, "down", "down", "down")  # the host that is down: its error below

    assert snap_compare(hosts_app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_host_form_with_an_error(snap_compare, hosts_app, size):
    async def run_before(pilot) -> None:
        await _hosts(pilot, "down", "enter", "tab", "ctrl+u", *"22a", "enter")

    assert snap_compare(hosts_app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_import_preview(snap_compare, hosts_app, size, tmp_path, monkeypatch):
    user_home = tmp_path / "user"
    (user_home / ".ssh").mkdir(parents=True)
    (user_home / ".ssh" / "config").write_text(SSH_CONFIG)
    monkeypatch.setenv("HOME", str(user_home))

    async def run_before(pilot) -> None:
        await _hosts(pilot, "i")

    assert snap_compare(hosts_app, terminal_size=size, run_before=run_before)
