"""Contract of the firewall seam (L{pyd.engine.networks.FirewallOps}): what networking relies on
from pyd's nftables tables, run against the fake (always) and, under the integration marker, the
real L{FirewallDriver} (root) inside a network namespace of the test's own, so the host's
tables are never touched. A behaviour the fake shows and the driver does not (or the reverse)
fails here, not in a test that trusted the fake.

Nothing here sends traffic: the rules name a bridge that does not exist and a 10.2xx.y.0/24
that no route covers; the namespaces (and every table in them) are deleted afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from pyd.drivers.network.hostfw import HostForward
from pyd.drivers.network.nft import (
    DNS_TABLE,
    BridgeRules,
    FirewallDriver,
    PortRule,
    Ruleset,
    table_name,
)
from pyd.drivers.process import ProcessResult
from pyd.engine.networks import FirewallOps
from tests.fakes.network import FakeFirewall
from tests.helpers.netsvc import SyncRunner
from tests.helpers.sync import run_sync


class InNetns:
    """A ProcessRunner that runs each program inside the namespace pinned at C{path}."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._inner = SyncRunner()

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        check: bool = False,
        child_fds: Mapping[int, Any] | None = None,
    ) -> Deferred[ProcessResult]:
        return self._inner.run(
            ["nsenter", f"--net={self.path}", *argv], stdin=stdin, env=env, cwd=cwd, check=check
        )


class Firewall:
    """One driver under test, and how to observe what it left in the kernel."""

    def __init__(self, ops: FirewallOps, tag: str) -> None:
        self.ops = ops
        self.tag = tag
        self.bridge = "pydf" + tag

    def table_ports(self) -> set[int] | None:
        """The host ports the table publishes, or None when there is no table."""
        raise NotImplementedError

    def dns_table(self, netns_path: str) -> bool:
        """Whether the namespace at C{netns_path} holds pyd's DNS table."""
        raise NotImplementedError

    def table6_ports(self) -> set[int] | None:
        """The host ports the ip6 table publishes, or None when there is no ip6 table."""
        raise NotImplementedError


class FakeSide(Firewall):
    def __init__(self, tag: str) -> None:
        self.fake = FakeFirewall()
        super().__init__(self.fake, tag)

    def table_ports(self) -> set[int] | None:
        rules = self.fake.rules
        if rules is None:
            return None
        return {p.host_port for p in rules.ports if ":" not in p.host_ip and p.container_ip}

    def dns_table(self, netns_path: str) -> bool:
        return netns_path in self.fake.dns_tables

    def table6_ports(self) -> set[int] | None:
        rules = self.fake.rules
        if rules is None or not rules.ipv6 or not any(b.subnet6 for b in rules.bridges):
            return None
        return {
            p.host_port
            for p in rules.ports
            if p.container_ip6 and (not p.host_ip or ":" in p.host_ip)
        }

    def container_netns(self, name: str) -> str:
        return f"/run/netns/{name}"

    def drop_forward(self, family: str) -> None:
        self.fake.host_chains.add(family)


class RealSide(Firewall):
    def __init__(self, tag: str) -> None:
        self.namespaces: list[str] = []
        self.host_ns = self._add_netns(f"pydfw{tag}")
        super().__init__(FirewallDriver(InNetns(self.host_ns), table_name(f"/tmp/c{tag}")), tag)

    def _add_netns(self, name: str) -> str:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        self.namespaces.append(name)
        return f"/run/netns/{name}"

    def container_netns(self, name: str) -> str:
        return self._add_netns(name)

    def _nft(self, netns_path: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", f"--net={netns_path}", "nft", *argv], capture_output=True, text=True
        )

    def table_ports(self) -> set[int] | None:
        return self._ports("ip")

    def table6_ports(self) -> set[int] | None:
        return self._ports("ip6")

    def _ports(self, family: str) -> set[int] | None:
        r = self._nft(self.host_ns, "-j", "list", "table", family, self.ops.table)
        if r.returncode != 0:
            return None
        ports: set[int] = set()
        for item in json.loads(r.stdout)["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                match = expr.get("match", {})
                payload = match.get("left", {}).get("payload", {})
                if payload.get("field") == "dport" and isinstance(match.get("right"), int):
                    ports.add(match["right"])
        return ports

    def dns_table(self, netns_path: str) -> bool:
        return self._nft(netns_path, "list", "table", "ip", DNS_TABLE).returncode == 0

    def _tables(self, family: str, *argv: str) -> subprocess.CompletedProcess[str]:
        prog = "iptables" if family == "ip" else "ip6tables"
        return subprocess.run(
            ["nsenter", f"--net={self.host_ns}", prog, *argv], capture_output=True, text=True
        )

    def drop_forward(self, family: str) -> None:
        self._tables(family, "-P", "FORWARD", "DROP").check_returncode()

    def forward_policy(self, family: str) -> str:
        first = self._tables(family, "-S", "FORWARD").stdout.splitlines()[0]
        return first.split()[-1]

    def nft_tables(self) -> str:
        return self._nft(self.host_ns, "list", "tables").stdout

    def host_view(self, family: str) -> tuple[int, frozenset[str]]:
        chain = self.ops.table.upper() + "-FORWARD"
        listing = self._tables(family, "-S", "FORWARD").stdout.splitlines()
        jumps = sum(1 for line in listing if line.endswith(f"-j {chain}"))
        rules = self._tables(family, "-S", chain)
        if rules.returncode != 0:
            return jumps, frozenset()
        words = [line.split() for line in rules.stdout.splitlines()]
        return jumps, frozenset(w[w.index("-i") + 1] for w in words if "-i" in w)

    def cleanup(self) -> None:
        for name in self.namespaces:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _fake() -> Iterator[FakeSide]:
    yield FakeSide(secrets.token_hex(3))


def _real() -> Iterator[RealSide]:
    if os.geteuid() != 0:
        pytest.skip("the real firewall driver needs root")
    side = RealSide(secrets.token_hex(3))
    try:
        yield side
    finally:
        side.cleanup()


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.integration)])
def fw(request: pytest.FixtureRequest) -> Iterator[FakeSide | RealSide]:
    yield from (_fake() if request.param == "fake" else _real())


def _rules(bridge: str, *host_ports: int) -> Ruleset:
    return Ruleset(
        bridges=(BridgeRules(bridge=bridge, subnet="10.251.7.0/24"),),
        ports=tuple(PortRule("tcp", "", port, "10.251.7.2", 80) for port in host_ports),
    )


def test_remove_without_table_is_quiet(fw: FakeSide | RealSide) -> None:
    """remove() on a daemon that never applied anything succeeds and leaves no table."""
    run_sync(fw.ops.remove())
    assert fw.table_ports() is None


def test_apply_replaces_whole_table(fw: FakeSide | RealSide) -> None:
    """Each apply() replaces the table: a port of the previous ruleset does not survive."""
    run_sync(fw.ops.apply(_rules(fw.bridge, 18080, 18081)))
    assert fw.table_ports() == {18080, 18081}
    run_sync(fw.ops.apply(_rules(fw.bridge, 18082)))
    assert fw.table_ports() == {18082}
    run_sync(fw.ops.apply(Ruleset()))
    assert fw.table_ports() == set()


def test_remove_deletes_table(fw: FakeSide | RealSide) -> None:
    """remove() deletes the table whole; a second remove() is still quiet."""
    run_sync(fw.ops.apply(_rules(fw.bridge, 18080)))
    run_sync(fw.ops.remove())
    assert fw.table_ports() is None
    run_sync(fw.ops.remove())
    assert fw.table_ports() is None


def _dual(bridge: str, ipv6: bool = True) -> Ruleset:
    return Ruleset(
        bridges=(BridgeRules(bridge=bridge, subnet="10.251.7.0/24", subnet6="fd00:251:7::/64"),),
        ports=(
            PortRule("tcp", "", 18090, "10.251.7.2", 80, "fd00:251:7::2"),
            PortRule("tcp", "fd00:251:8::1", 18091, "10.251.7.2", 80, "fd00:251:7::2"),
            PortRule("tcp", "127.0.0.1", 18092, "10.251.7.2", 80, "fd00:251:7::2"),
        ),
        ipv6=ipv6,
    )


def test_ip6_table_follows_ip6tables(fw: FakeSide | RealSide) -> None:
    """A dual-stack ruleset with ip6tables makes the ip6 table (ports for all addresses and
    IPv6 ones); without ip6tables, or after remove(), there is none; the ip table is as
    before."""
    run_sync(fw.ops.apply(_dual(fw.bridge)))
    assert fw.table6_ports() == {18090, 18091}
    assert fw.table_ports() == {18090, 18092}
    run_sync(fw.ops.apply(_dual(fw.bridge, ipv6=False)))
    assert fw.table6_ports() is None
    assert fw.table_ports() == {18090, 18092}
    run_sync(fw.ops.apply(_dual(fw.bridge)))
    run_sync(fw.ops.remove())
    assert (fw.table_ports(), fw.table6_ports()) == (None, None)


def test_ipv6_only_bridge(fw: FakeSide | RealSide) -> None:
    """An IPv6-only bridge (no IPv4 subnet) and a port of its container (no IPv4 address):
    the ip6 table carries the port, the ip table none (a DNAT to no address would not load)."""
    rules = Ruleset(
        bridges=(BridgeRules(bridge=fw.bridge, subnet="", subnet6="fd00:251:9::/64"),),
        ports=(
            PortRule("tcp", "::", 18093, "", 80, "fd00:251:9::2"),
            PortRule("tcp", "", 18094, "", 80, "fd00:251:9::3"),
        ),
        ipv6=True,
    )
    run_sync(fw.ops.apply(rules))
    assert fw.table6_ports() == {18093, 18094}
    assert fw.table_ports() == set()


def test_dns_table_in_container_namespace(fw: FakeSide | RealSide) -> None:
    """apply_dns() puts the DNS table in that namespace only, and may be repeated."""
    ns1 = fw.container_netns(f"pydfc{fw.tag}a")
    ns2 = fw.container_netns(f"pydfc{fw.tag}b")
    run_sync(fw.ops.apply_dns(ns1, "127.0.0.11", 40053, 40054))
    run_sync(fw.ops.apply_dns(ns1, "127.0.0.11", 40055, 40056))
    assert fw.dns_table(ns1)
    assert not fw.dns_table(ns2)
    assert fw.table_ports() is None


# -- the host's filter FORWARD (dockerd's DOCKER-FORWARD; pyd.drivers.network.hostfw) ----------


def _host_view(fw: FakeSide | RealSide, family: str) -> tuple[int, frozenset[str]]:
    """(pyd's jumps in the host's FORWARD, the bridges pyd's chain accepts)."""
    if isinstance(fw, FakeSide):
        names = fw.fake.host.get(family)
        return (0, frozenset()) if names is None else (1, frozenset(names))
    return fw.host_view(family)


def test_host_forward_needs_a_host_chain(fw: FakeSide | RealSide) -> None:
    """Without a filter FORWARD on the host, host_forward() says so and creates none."""
    assert run_sync(fw.ops.host_forward("ip", [fw.bridge])) is False
    assert _host_view(fw, "ip") == (0, frozenset())
    if isinstance(fw, RealSide):
        assert "filter" not in fw.nft_tables()


@pytest.mark.parametrize("family", ["ip", "ip6"])
def test_host_forward_opens_replaces_and_removes(fw: FakeSide | RealSide, family: str) -> None:
    """With the host's FORWARD policy at drop, host_forward() adds one jump for the bridges
    given, replaces it (never a second one) when called again, and removes it with no
    bridges; the host's policy stays drop."""
    fw.drop_forward(family)
    other = fw.bridge + "x"
    assert run_sync(fw.ops.host_forward(family, [fw.bridge, other])) is True
    assert _host_view(fw, family) == (1, frozenset({fw.bridge, other}))
    assert run_sync(fw.ops.host_forward(family, [fw.bridge])) is True
    assert _host_view(fw, family) == (1, frozenset({fw.bridge}))
    assert run_sync(fw.ops.host_forward(family, [])) is True
    assert _host_view(fw, family) == (0, frozenset())
    assert run_sync(fw.ops.host_forward(family, [])) is True
    if isinstance(fw, RealSide):
        assert fw.forward_policy(family) == "DROP"


@pytest.mark.integration
def test_host_forward_legacy_iptables() -> None:
    """On a host whose iptables is the legacy one, the same jump and chain are kept through
    iptables-legacy, and go again with no bridges (real kernel only: the fake has no
    variants)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    side = RealSide(secrets.token_hex(3))
    try:
        runner = InNetns(side.host_ns)
        hf = HostForward(runner, side.ops.table, "ip", variant="-legacy")
        assert run_sync(hf.apply([side.bridge])) is False  # no filter table loaded: nothing
        legacy = ["nsenter", f"--net={side.host_ns}", "iptables-legacy"]
        subprocess.run([*legacy, "-P", "FORWARD", "DROP"], check=True)
        assert run_sync(hf.apply([side.bridge])) is True
        assert run_sync(hf.apply([side.bridge])) is True
        listing = subprocess.run([*legacy, "-S"], capture_output=True, text=True).stdout
        chain = side.ops.table.upper() + "-FORWARD"
        assert listing.count(f"-j {chain}") == 1
        assert f"-A {chain} -i {side.bridge} -j ACCEPT" in listing
        assert run_sync(hf.apply([])) is True
        listing = subprocess.run([*legacy, "-S"], capture_output=True, text=True).stdout
        assert listing.split("\n")[:3] == ["-P INPUT ACCEPT", "-P FORWARD DROP", "-P OUTPUT ACCEPT"]
        assert "PYD" not in listing
    finally:
        side.cleanup()
