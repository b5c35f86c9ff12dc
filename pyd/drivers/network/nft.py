"""pyd's nftables tables: port mapping and isolation on the host, DNS in containers (layer: drivers).

The host tables (C{ip}, and C{ip6} for dual-stack bridges) are rendered from a L{Ruleset} and replaced in one C{nft -f} transaction
(create-if-missing, delete, re-create: atomic for the kernel). Nothing outside the table is
touched; teardown deletes the table whole. The rendering is a pure function so unit tests check
the text and integration tests check the kernel's behaviour.

Each container namespace served by the embedded resolver gets one more small table,
L{DNS_TABLE} (L{render_dns}): C{127.0.0.11:53} (UDP and TCP) is DNAT-ed to the ports where the
daemon's resolver sockets listen inside that namespace, and the replies leave from port 53
again. The table lives and dies with the namespace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import attrs
from twisted.internet.defer import Deferred

from pyd.drivers.network.hostfw import HostForward, HostForwardError
from pyd.drivers.process import ProcessResult, ProcessRunner


def table_name(exec_root: str) -> str:
    """The table of the daemon whose exec-root is C{exec_root} (C{pyd} for the default one)."""
    if exec_root.rstrip("/") in ("/run/pyd", "/var/run/pyd"):
        return "pyd"
    return "pyd_" + hashlib.sha256(exec_root.rstrip("/").encode()).hexdigest()[:10]


@attrs.frozen
class BridgeRules:
    """Filtering and NAT facts of one bridge network."""

    bridge: str
    subnet: str
    internal: bool = False
    icc: bool = True
    masquerade: bool = False  # masquerade traffic leaving the host (config ip-masq)
    subnet6: str = ""  # the IPv6 subnet of a dual-stack network ("" for none)


@attrs.frozen
class PortRule:
    """One published port: host_ip ("" = every local address):host_port -> container."""

    protocol: str  # "tcp" | "udp" | "sctp"
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    container_ip6: str = ""  # the container's IPv6 address ("" for none: no IPv6 rule)


@attrs.frozen
class LinkRule:
    """A legacy link's port on a bridge without icc: C{parent_ip} may reach C{child_ip}'s
    C{port} (and the child answer from it), as dockerd's link rules allow."""

    bridge: str
    parent_ip: str
    child_ip: str
    protocol: str  # "tcp" | "udp" | "sctp"
    port: int


@attrs.frozen
class Ruleset:
    """Everything the table holds."""

    bridges: tuple[BridgeRules, ...] = ()
    ports: tuple[PortRule, ...] = ()
    links: tuple[LinkRule, ...] = ()  # legacy links (IPv4, as dockerd's)
    ipv6: bool = False  # dockerd's ip6tables: an ip6 table for the dual-stack bridges


def _q(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def _set(names: Sequence[str]) -> str:
    return "{ " + ", ".join(_q(n) for n in names) + " }"


def render(table: str, rules: Ruleset) -> str:
    """The C{nft -f} script that atomically replaces C{table} with C{rules}.

    Two tables of the same name: C{ip} for IPv4 and, when a bridge has an IPv6 subnet and
    C{rules.ipv6} (dockerd's ip6tables) is on, C{ip6} with the same rules for IPv6 (published
    ports DNAT to the containers' IPv6 addresses). An C{ip6} table not wanted is deleted.
    """
    lines = _table("ip", table, rules)
    lines += [f"table ip6 {table} {{}}", f"delete table ip6 {table}"]
    if rules.ipv6 and any(b.subnet6 for b in rules.bridges):
        lines += _table("ip6", table, rules)[2:]
    return "\n".join(lines) + "\n"


def _port_rules(family: str, rules: Ruleset) -> list[str]:
    pm = []
    for p in rules.ports:
        v6_host = ":" in p.host_ip
        if family == "ip":
            if v6_host or not p.container_ip:
                continue
            match = f"ip daddr {p.host_ip} " if p.host_ip and p.host_ip != "0.0.0.0" else ""
            target = f"{p.container_ip}:{p.container_port}"
        else:
            if not p.container_ip6 or (p.host_ip and not v6_host):
                continue
            match = f"ip6 daddr {p.host_ip} " if p.host_ip and p.host_ip != "::" else ""
            target = f"[{p.container_ip6}]:{p.container_port}"
        pm.append(f"{match}{p.protocol} dport {p.host_port} dnat to {target}")
    return pm


def _table(family: str, table: str, rules: Ruleset) -> list[str]:
    """One family's table: C{family} is C{ip} (subnets) or C{ip6} (the IPv6 subnets)."""
    lines = [
        f"table {family} {table} {{}}",
        f"delete table {family} {table}",
        f"table {family} {table} {{",
    ]
    all_bridges = [b.bridge for b in rules.bridges]

    def subnet(b: BridgeRules) -> str:
        return b.subnet if family == "ip" else b.subnet6

    pre = [
        "type nat hook prerouting priority dstnat; policy accept;",
        "fib daddr type local jump portmap",
    ]
    lines += _chain("prerouting", pre)
    # [::1] is left to the userland proxy: a DNAT-ed packet with a loopback source would
    # never leave the host's loopback for IPv6 (no route_localnet there).
    local = "ip6 daddr != ::1 " if family == "ip6" else ""
    lines += _chain(
        "output",
        [
            "type nat hook output priority -100; policy accept;",
            f"{local}fib daddr type local jump portmap",
        ],
    )
    lines += _chain("portmap", _port_rules(family, rules))

    post = ["type nat hook postrouting priority srcnat; policy accept;"]
    for b in rules.bridges:
        br = _q(b.bridge)
        # Connections from the host itself (127.0.0.1 included) answered through our bridge.
        if not subnet(b):
            post.append(f"oifname {br} fib saddr type local masquerade")
            continue
        # The one local address inside the bridge's subnet is its own, which masquerading
        # would pick anyway: skipping it spares each direct connection from the host to a
        # container the NAT set-up (~5 % of bench.network's connection rate), changing nothing.
        post.append(f"oifname {br} {family} saddr != {subnet(b)} fib saddr type local masquerade")
        # Hairpin: a container reaching a published port that leads back into its own bridge.
        post.append(f"oifname {br} ct status dnat {family} saddr {subnet(b)} masquerade")
        if b.masquerade and not b.internal:
            post.append(f"{family} saddr {subnet(b)} oifname != {_set(all_bridges)} masquerade")
    lines += _chain("postrouting", post)

    fwd = [
        "type filter hook forward priority filter; policy accept;",
    ]
    if rules.bridges:
        fwd.append(f"iifname {_set(all_bridges)} ct state established,related accept")
        fwd.append(f"oifname {_set(all_bridges)} ct state established,related accept")
    for b in rules.bridges:
        br = _q(b.bridge)
        if b.internal:
            fwd.append(f"iifname {br} oifname != {br} drop")
            fwd.append(f"oifname {br} iifname != {br} drop")
        if not b.icc:
            for lk in rules.links if family == "ip" else ():
                if lk.bridge != b.bridge:
                    continue
                pair = f"iifname {br} oifname {br} ip saddr"
                fwd.append(
                    f"{pair} {lk.parent_ip} ip daddr {lk.child_ip} "
                    f"{lk.protocol} dport {lk.port} accept"
                )
                fwd.append(
                    f"{pair} {lk.child_ip} ip daddr {lk.parent_ip} "
                    f"{lk.protocol} sport {lk.port} accept"
                )
            fwd.append(f"iifname {br} oifname {br} drop")
    for b in rules.bridges:
        if not b.internal:
            fwd.append(f"oifname {_q(b.bridge)} ct status dnat accept")
    for b in rules.bridges:
        br = _q(b.bridge)
        others = [x for x in all_bridges if x != b.bridge]
        if others:
            fwd.append(f"iifname {br} oifname {_set(others)} drop")
        if not b.masquerade or b.internal:
            fwd.append(f"iifname {br} oifname != {_set(all_bridges)} drop")
    lines += _chain("forward", fwd)
    lines.append("}")
    return lines


DNS_TABLE = "pyd_dns"


def render_dns(address: str, udp_port: int, tcp_port: int, table: str = DNS_TABLE) -> str:
    """The C{nft -f} script for a container namespace: C{address:53} to the resolver's ports.

    The DNAT happens in C{output} (queries come from the container's own processes to a
    loopback address); conntrack rewrites the replies back to C{address:53}, and the C{snat}
    rules make a reply that starts a new conntrack entry leave from port 53 too.
    """
    lines = [f"table ip {table} {{}}", f"delete table ip {table}", f"table ip {table} {{"]
    lines += _chain(
        "dns-dnat",
        [
            "type nat hook output priority -100; policy accept;",
            f"ip daddr {address} udp dport 53 dnat to {address}:{udp_port}",
            f"ip daddr {address} tcp dport 53 dnat to {address}:{tcp_port}",
        ],
    )
    lines += _chain(
        "dns-snat",
        [
            "type nat hook postrouting priority srcnat; policy accept;",
            f"ip saddr {address} udp sport {udp_port} snat to :53",
            f"ip saddr {address} tcp sport {tcp_port} snat to :53",
        ],
    )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _chain(name: str, body: Sequence[str]) -> list[str]:
    return [f"  chain {name} {{"] + [f"    {line}" for line in body] + ["  }"]


class NftError(Exception):
    """nft refused a ruleset or a command."""


class FirewallDriver:
    """Applies and removes the table with the C{nft} program (through pyd.drivers.process),
    and pyd's accept rules in the host's filter C{FORWARD} (L{pyd.drivers.network.hostfw})."""

    def __init__(
        self, runner: ProcessRunner, table: str, nft: str = "nft", nsenter: str = "nsenter"
    ) -> None:
        self._runner = runner
        self.table = table
        self._nft = nft
        self._nsenter = nsenter
        self._host = {f: HostForward(runner, table, f, nft) for f in ("ip", "ip6")}

    async def host_forward(self, family: str, bridges: Sequence[str]) -> bool:
        """Make the host's filter C{FORWARD} of C{family} (C{ip}/C{ip6}) accept the traffic
        of C{bridges} (none: remove pyd's rules there).

        @return: whether the host has such a chain (False: nothing to do, nothing done).
        @raise NftError: iptables refused.
        """
        try:
            return await self._host[family].apply(bridges)
        except HostForwardError as e:
            raise NftError(str(e)) from e

    async def apply(self, rules: Ruleset) -> None:
        """Replace the table with C{rules} in one transaction. @raise NftError: nft refused."""
        text = render(self.table, rules)
        d: Deferred[ProcessResult] = self._runner.run([self._nft, "-f", "-"], stdin=text.encode())
        result = await d
        if not result.ok:
            raise NftError(
                f"nft -f failed ({result.rc}): {result.stderr.decode('utf-8', 'replace').strip()}"
            )

    async def apply_dns(self, netns_path: str, address: str, udp_port: int, tcp_port: int) -> None:
        """Replace L{DNS_TABLE} inside the namespace pinned at C{netns_path}.

        @raise NftError: nsenter or nft refused.
        """
        text = render_dns(address, udp_port, tcp_port)
        argv = [self._nsenter, f"--net={netns_path}", self._nft, "-f", "-"]
        result = await self._runner.run(argv, stdin=text.encode())
        if not result.ok:
            raise NftError(
                f"nft in {netns_path} failed ({result.rc}): "
                f"{result.stderr.decode('utf-8', 'replace').strip()}"
            )

    async def remove(self) -> None:
        """Delete the table (no error when it does not exist)."""
        text = "".join(
            f"table {family} {self.table} {{}}\ndelete table {family} {self.table}\n"
            for family in ("ip", "ip6")
        )
        result = await self._runner.run([self._nft, "-f", "-"], stdin=text.encode())
        if not result.ok:
            raise NftError(f"nft delete table failed: {result.stderr.decode().strip()}")
