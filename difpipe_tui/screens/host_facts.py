"""What the Hosts screen shows of a host: its config, its live state and what its last check
found (OS, architecture, tools, free disk, when it last answered). No Textual here."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text

from ..core import config as cfg
from ..core.hostcheck import HostCheckResult
from ..core.remote import BASIC_TOOLS, PROBED_TOOLS
from ..core.store import HostStatus
from ..render import human_bytes
from ..widgets import badge
from .live import HostView


@dataclass
class HostFacts:
    """What the last successful check learned; a failed check keeps it and says why."""

    os: str | None = None
    arch: str | None = None
    tools: tuple[str, ...] | None = None
    free_bytes: int | None = None
    last_seen: float | None = None
    auth_method: str | None = None

    @classmethod
    def from_status(cls, status: HostStatus) -> HostFacts:
        tools = tuple(status.tools) if status.tools or status.last_seen else None
        return cls(status.os, status.arch, tools, status.free_bytes, status.last_seen)

    def update(self, result: HostCheckResult) -> None:
        if not result.reachable:
            return
        self.os, self.arch = result.os, result.arch
        self.tools = tuple(result.tools)
        self.free_bytes = result.free_bytes
        self.last_seen = result.checked_at
        self.auth_method = result.auth_method


def seen_time(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%b %d %H:%M", time.localtime(ts))


def tools_text(tools: tuple[str, ...] | None) -> str:
    """The tools that vary between hosts, in the order the planner prefers them; a basic one
    that is missing shows as ``-name``."""
    if tools is None:
        return "-"
    known = [t for t in PROBED_TOOLS if t in tools and t not in BASIC_TOOLS]
    missing = [f"-{t}" for t in BASIC_TOOLS if t not in tools]
    return " ".join([*known, *missing]) or "basic only"


def address_text(host: cfg.Host) -> str:
    where = f"{host.user}@{host.address}" if host.user else host.address
    return where if host.port == 22 else f"{where}:{host.port}"


def os_text(facts: HostFacts | None) -> str:
    if facts is None or not (facts.os or facts.arch):
        return "-"
    return "/".join(p for p in (facts.os, facts.arch) if p)


def row_cells(host: cfg.Host, view: HostView, facts: HostFacts | None) -> tuple:
    f = facts or HostFacts()
    return (
        host.name,
        host.role,
        address_text(host),
        badge(view.state),
        "-" if view.latency_ms is None else f"{view.latency_ms:.1f} ms",
        os_text(facts),
        human_bytes(f.free_bytes),
        seen_time(f.last_seen),
        tools_text(f.tools),
    )


def detail_text(config: cfg.Config, name: str, view: HostView, facts: HostFacts | None) -> Text:
    """Two or three lines about the selected host: how it is reached, and its last error."""
    host = config.hosts[name]
    user = host.user or config.defaults.user
    policy = host.host_key_policy or config.defaults.host_key_policy
    via = "via " + " → ".join(host.jump) if host.jump else "direct"
    auth = ", ".join(host.auth.methods()) or "none"
    used = f" (last login: {facts.auth_method})" if facts and facts.auth_method else ""
    text = Text()
    text.append(f"{name}", style="bold")
    where = f"{user}@{host.address}" if user else host.address
    text.append(f"  {where}:{host.port} · {via} · host keys {policy}\n")
    text.append(f"auth: {auth}{used}")
    if host.tags:
        text.append(f" · tags: {', '.join(host.tags)}")
    if host.description:
        text.append(f" · {host.description}")
    if facts is None or facts.last_seen is None:
        text.append("\nnever answered a check")
    else:
        text.append(
            f"\n{os_text(facts)} · free {human_bytes(facts.free_bytes)} · "
            f"last seen {seen_time(facts.last_seen)} · tools: {tools_text(facts.tools)}"
        )
    if view.error and view.state != "up":
        text.append(f"\nlast error: {view.error}", style="bold red")
    return text
