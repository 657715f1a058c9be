"""Network namespaces, veth links and a bridge for the lab, plus the fault helpers.

Address plan (``N`` is picked per run so that several labs can coexist):

* ``10.77.N.0/24``: a bridge ``<prefix>br`` in the root namespace holds ``10.77.N.1``, the
  address the tests connect from. Each plain host gets ``10.77.N.<octet>`` on ``eth0`` in its
  namespace, linked to the bridge by the veth ``<prefix>v<i>``.
* ``10.78.N.0/24``: a private link between the bastion (``eth1``, ``10.78.N.1``) and hosts
  behind it (``eth0``, ``10.78.N.<octet>``). The root namespace gets an ``unreachable`` route
  for this subnet, so nothing addressed to it ever leaves through a default gateway, and
  forwarding is off in every lab namespace.

``N`` is the lowest number for which neither subnet overlaps a route of the root namespace;
the choice is made under a file lock so that concurrent runs do not pick the same one.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from .system import INSTALL_HINT, LabError, is_stale, kill_all, run, which

BRIDGE_NET = "10.77.{n}.0/24"
PRIVATE_NET = "10.78.{n}.0/24"
PRIVATE_RANGE = ipaddress.ip_network("10.78.0.0/16")
ROUTE_PROTO = "77"
"""Routes the lab adds carry this routing protocol number, which tells them apart."""
NFT_TABLE = "difpipe_lab"
NS_DEVICE = "eth0"
BASTION_PRIVATE_DEVICE = "eth1"


@dataclass(frozen=True)
class Attachment:
    """Where a host plugs in: the bridge (``via`` None) or the private link of ``via``."""

    name: str
    octet: int
    via: str | None = None


@dataclass
class Link:
    """A host's veth: ``device`` in the host's namespace, ``peer_device`` at the far end."""

    namespace: str
    device: str
    peer_namespace: str | None
    peer_device: str
    address: str
    state: set[str] = field(default_factory=set)


def _ip(namespace: str | None, *args: str) -> list[str]:
    return ["ip", *(["-n", namespace] if namespace else []), *args]


def _tc(namespace: str | None, *args: str) -> list[str]:
    return ["tc", *(["-n", namespace] if namespace else []), *args]


def _in_netns(namespace: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *argv]


@contextlib.contextmanager
def _allocation_lock() -> Iterator[None]:
    directory = "/run/lock" if os.access("/run/lock", os.W_OK) else tempfile.gettempdir()
    with open(os.path.join(directory, "difpipe-lab.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _root_routes() -> list[ipaddress.IPv4Network]:
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    networks = []
    for route in routes:
        dst = route.get("dst", "default")
        if dst == "default":
            continue
        networks.append(ipaddress.ip_network(dst, strict=False))
    return networks


def netns_unsupported() -> str | None:
    """Why network namespaces cannot be made here, or None when they may be tried."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [tool for tool in ("ip", "tc", "nft") if which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed ({INSTALL_HINT})"
    return None


class Topology:
    """The namespaces and links of one lab."""

    def __init__(self, prefix: str, hosts: list[Attachment]) -> None:
        self.prefix = prefix
        self.hosts = hosts
        self.bridge = f"{prefix}br"
        self.links: dict[str, Link] = {}
        self.namespaces: list[str] = []
        self.subnet: ipaddress.IPv4Network | None = None
        self.private_subnet: ipaddress.IPv4Network | None = None
        self._route: str | None = None
        self._bridge_made = False

    @property
    def gateway(self) -> str:
        """The test process's address on the bridge."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def namespace(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def create(self) -> None:
        self._create_bridge()
        private_hosts = [host for host in self.hosts if host.via]
        bridge_hosts = [host for host in self.hosts if not host.via]
        assert self.subnet is not None and self.private_subnet is not None
        for host in self.hosts:
            namespace = self.namespace(host.name)
            run(["ip", "netns", "add", namespace])
            self.namespaces.append(namespace)
        root_batch = []
        for index, host in enumerate(bridge_hosts):
            namespace = self.namespace(host.name)
            veth = f"{self.prefix}v{index}"
            root_batch += [
                f"link add {veth} type veth peer name {NS_DEVICE} netns {namespace}",
                f"link set {veth} master {self.bridge} up",
            ]
            address = str(self.subnet.network_address + host.octet)
            self.links[host.name] = Link(namespace, NS_DEVICE, None, veth, address)
        run(["ip", "-batch", "-"], input="\n".join(root_batch) + "\n")
        for host in private_hosts:
            assert host.via is not None
            via = self.namespace(host.via)
            namespace = self.namespace(host.name)
            pair = f"{BASTION_PRIVATE_DEVICE} type veth peer name {NS_DEVICE} netns {namespace}"
            run(_ip(via, "link", "add", *pair.split()))
            address = str(self.private_subnet.network_address + host.octet)
            self.links[host.name] = Link(namespace, NS_DEVICE, via, BASTION_PRIVATE_DEVICE, address)
        gateways = {host.via for host in private_hosts}
        for host in self.hosts:
            namespace = self.namespace(host.name)
            link = self.links[host.name]
            batch = [
                "link set lo up",
                f"addr add {link.address}/24 dev {NS_DEVICE}",
                f"link set {NS_DEVICE} up",
            ]
            if host.name in gateways:
                private_gateway = self.private_subnet.network_address + 1
                batch += [
                    f"addr add {private_gateway}/24 dev {BASTION_PRIVATE_DEVICE}",
                    f"link set {BASTION_PRIVATE_DEVICE} up",
                ]
            run(_ip(namespace, "-batch", "-"), input="\n".join(batch) + "\n")
            # New namespaces start with forwarding off; pin it so a bastion is never a router.
            run(_in_netns(namespace, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"))

    def _create_bridge(self) -> None:
        with _allocation_lock():
            used = _root_routes()
            for n in range(256):
                subnet = ipaddress.ip_network(BRIDGE_NET.format(n=n))
                private = ipaddress.ip_network(PRIVATE_NET.format(n=n))
                if not any(net.overlaps(subnet) or net.overlaps(private) for net in used):
                    break
            else:
                raise LabError("no free 10.77.N.0/24 + 10.78.N.0/24 pair for the lab network")
            self.subnet, self.private_subnet = subnet, private
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
            self._bridge_made = True
            gateway = subnet.network_address + 1
            run(["ip", "addr", "add", f"{gateway}/24", "dev", self.bridge])
            run(["ip", "link", "set", self.bridge, "up"])
            run(["ip", "route", "add", "unreachable", str(private), "proto", ROUTE_PROTO])
            self._route = str(private)

    # Faults ------------------------------------------------------------------------------

    def cut(self, name: str) -> None:
        """Pull the cable: take the far end of the host's veth down."""
        link = self.links[name]
        run(_ip(link.peer_namespace, "link", "set", link.peer_device, "down"))
        link.state.add("cut")

    def drop(self, name: str, percent: int) -> None:
        """Drop ``percent`` % of the host's packets, each way, at random."""
        link = self.links[name]
        rule = f"numgen random mod 100 < {percent} counter drop"
        script = (
            f"table inet {NFT_TABLE}\n"
            f"delete table inet {NFT_TABLE}\n"
            f"table inet {NFT_TABLE} {{\n"
            "  chain input {\n"
            "    type filter hook input priority -10; policy accept;\n"
            f'    iifname "lo" accept\n    {rule}\n'
            "  }\n"
            "  chain output {\n"
            "    type filter hook output priority -10; policy accept;\n"
            f'    oifname "lo" accept\n    {rule}\n'
            "  }\n"
            "}\n"
        )
        run(_in_netns(link.namespace, "nft", "-f", "-"), input=script)
        link.state.add("drop")

    def nft_ruleset(self, name: str) -> str:
        link = self.links[name]
        return run(_in_netns(link.namespace, "nft", "list", "ruleset")).stdout

    def cap(self, name: str, rate: str, burst: str, latency: str) -> None:
        """Shape both directions of the host's link with a token bucket."""
        link = self.links[name]
        tbf = ["root", "tbf", "rate", rate, "burst", burst, "latency", latency]
        link.state.add("cap")
        run(_tc(link.namespace, "qdisc", "replace", "dev", link.device, *tbf))
        run(_tc(link.peer_namespace, "qdisc", "replace", "dev", link.peer_device, *tbf))

    def link_bytes(self, name: str) -> tuple[int, int]:
        """(received, sent) bytes so far on the host's side of its link, as the kernel counts
        them: every byte of every packet, whatever carried it."""
        link = self.links[name]
        shown = run(_ip(link.namespace, "-s", "-j", "link", "show", "dev", link.device)).stdout
        stats = json.loads(shown)[0]["stats64"]
        return int(stats["rx"]["bytes"]), int(stats["tx"]["bytes"])

    def heal(self, name: str) -> None:
        """Undo the faults on the host's link; every step is tried even if one fails."""
        link = self.links[name]
        steps = []
        if "cut" in link.state:
            steps.append(_ip(link.peer_namespace, "link", "set", link.peer_device, "up"))
        if "drop" in link.state:
            steps.append(_in_netns(link.namespace, "nft", "delete", "table", "inet", NFT_TABLE))
        if "cap" in link.state:
            # A half-applied cap may have left one end unshaped: a missing qdisc is no error.
            run(_tc(link.namespace, "qdisc", "del", "dev", link.device, "root"), check=False)
            run(
                _tc(link.peer_namespace, "qdisc", "del", "dev", link.peer_device, "root"),
                check=False,
            )
        link.state.clear()
        errors = [result.stderr.strip() for result in map(_attempt, steps) if result.returncode]
        if errors:
            raise LabError(f"healing {name} failed: {'; '.join(errors)}")

    # Teardown ----------------------------------------------------------------------------

    def destroy(self) -> None:
        """Remove everything :meth:`create` made; safe to call on a half-built topology."""
        for namespace in self.namespaces:
            kill_namespace_processes(namespace)
        for link in self.links.values():
            if link.peer_namespace is None:
                run(["ip", "link", "del", link.peer_device], check=False)
        for namespace in self.namespaces:
            run(["ip", "netns", "del", namespace], check=False)
        self.namespaces.clear()
        if self._bridge_made:
            run(["ip", "link", "del", self.bridge], check=False)
            self._bridge_made = False
        if self._route:
            _delete_route(self._route)
            self._route = None

    @staticmethod
    def remove_stale() -> list[str]:
        """Remove namespaces, links and routes left by crashed lab runs; return their names."""
        removed = []
        listing = run(["ip", "-j", "netns", "list"], check=False).stdout.strip()
        for entry in json.loads(listing or "[]"):
            namespace = entry["name"]
            if is_stale(namespace, "namespace"):
                kill_namespace_processes(namespace)
                run(["ip", "netns", "del", namespace], check=False)
                removed.append(namespace)
        links = json.loads(run(["ip", "-j", "link", "show"], check=False).stdout or "[]")
        for link in sorted(links, key=lambda link: link["ifname"].endswith("br")):
            if is_stale(link["ifname"], "link"):
                run(["ip", "link", "del", link["ifname"]], check=False)
                removed.append(link["ifname"])
        # A private subnet's route is a leftover when no bridge holds its twin bridge subnet.
        with _allocation_lock():
            bridges = run(["ip", "-j", "-4", "addr", "show", "type", "bridge"], check=False)
            live = {
                ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False)
                for bridge in json.loads(bridges.stdout or "[]")
                for addr in bridge.get("addr_info", [])
            }
            routes = run(["ip", "-j", "-4", "route", "show", "proto", ROUTE_PROTO], check=False)
            for route in json.loads(routes.stdout or "[]"):
                private = ipaddress.ip_network(route["dst"])
                if route.get("type") != "unreachable" or not private.subnet_of(PRIVATE_RANGE):
                    continue
                n = private.network_address.packed[2]
                if ipaddress.ip_network(BRIDGE_NET.format(n=n)) not in live:
                    _delete_route(route["dst"])
                    removed.append(route["dst"])
        return removed


def _attempt(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return run(argv, check=False)


def _delete_route(destination: str) -> None:
    run(["ip", "route", "del", "unreachable", destination, "proto", ROUTE_PROTO], check=False)


def kill_namespace_processes(namespace: str) -> None:
    result = run(["ip", "netns", "pids", namespace], check=False)
    kill_all(int(pid) for pid in result.stdout.split() if pid.isdigit())
