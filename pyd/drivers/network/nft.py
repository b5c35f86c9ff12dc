"""pyd's one nftables table: port mapping, DNS redirects, isolation (layer: drivers).

The whole table is rendered from a L{Ruleset} and replaced in one C{nft -f} transaction
(create-if-missing, delete, re-create: atomic for the kernel). Nothing outside the table is
touched; teardown deletes the table whole. The rendering is a pure function so unit tests check
the text and integration tests check the kernel's behaviour.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import attrs
from twisted.internet.defer import Deferred

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
    dns_listen: str = ""  # gateway address where containers send DNS queries
    dns_udp_port: int = 0  # where the daemon's resolver really listens (0: no resolver)
    dns_tcp_port: int = 0


@attrs.frozen
class PortRule:
    """One published port: host_ip ("" = every local address):host_port -> container."""

    protocol: str  # "tcp" | "udp" | "sctp"
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


@attrs.frozen
class Ruleset:
    """Everything the table holds."""

    bridges: tuple[BridgeRules, ...] = ()
    ports: tuple[PortRule, ...] = ()


def _q(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def _set(names: Sequence[str]) -> str:
    return "{ " + ", ".join(_q(n) for n in names) + " }"


def render(table: str, rules: Ruleset) -> str:
    """The C{nft -f} script that atomically replaces C{table} with C{rules}."""
    lines = [f"table ip {table} {{}}", f"delete table ip {table}", f"table ip {table} {{"]
    all_bridges = [b.bridge for b in rules.bridges]

    pre = [
        "type nat hook prerouting priority dstnat; policy accept;",
    ]
    for b in rules.bridges:
        if b.dns_listen and b.dns_udp_port:
            pre.append(
                f"iifname {_q(b.bridge)} ip daddr {b.dns_listen} udp dport 53 "
                f"dnat to {b.dns_listen}:{b.dns_udp_port}"
            )
        if b.dns_listen and b.dns_tcp_port:
            pre.append(
                f"iifname {_q(b.bridge)} ip daddr {b.dns_listen} tcp dport 53 "
                f"dnat to {b.dns_listen}:{b.dns_tcp_port}"
            )
    pre.append("fib daddr type local jump portmap")
    lines += _chain("prerouting", pre)
    lines += _chain(
        "output",
        [
            "type nat hook output priority -100; policy accept;",
            "fib daddr type local jump portmap",
        ],
    )
    pm = []
    for p in rules.ports:
        match = f"ip daddr {p.host_ip} " if p.host_ip and p.host_ip != "0.0.0.0" else ""
        pm.append(
            f"{match}{p.protocol} dport {p.host_port} dnat to {p.container_ip}:{p.container_port}"
        )
    lines += _chain("portmap", pm)

    post = ["type nat hook postrouting priority srcnat; policy accept;"]
    for b in rules.bridges:
        br = _q(b.bridge)
        # Connections from the host itself (127.0.0.1 included) answered through our bridge.
        post.append(f"oifname {br} fib saddr type local masquerade")
        # Hairpin: a container reaching a published port that leads back into its own bridge.
        post.append(f"oifname {br} ct status dnat ip saddr {b.subnet} masquerade")
        if b.masquerade and not b.internal:
            post.append(f"ip saddr {b.subnet} oifname != {_set(all_bridges)} masquerade")
    lines += _chain("postrouting", post)

    fwd = [
        "type filter hook forward priority filter; policy accept;",
    ]
    if rules.bridges:
        fwd.append(f"iifname {_set(all_bridges)} ct state established,related accept")
        fwd.append(f"oifname {_set(all_bridges)} ct state established,related accept")
    for b in rules.bridges:
        br = _q(b.bridge)
        others = [x for x in all_bridges if x != b.bridge]
        if b.internal:
            fwd.append(f"iifname {br} oifname != {br} drop")
            fwd.append(f"oifname {br} iifname != {br} drop")
        if not b.icc:
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
    return "\n".join(lines) + "\n"


def _chain(name: str, body: Sequence[str]) -> list[str]:
    return [f"  chain {name} {{"] + [f"    {line}" for line in body] + ["  }"]


class NftError(Exception):
    """nft refused a ruleset or a command."""


class FirewallDriver:
    """Applies and removes the table with the C{nft} program (through pyd.drivers.process)."""

    def __init__(self, runner: ProcessRunner, table: str, nft: str = "nft") -> None:
        self._runner = runner
        self.table = table
        self._nft = nft

    async def apply(self, rules: Ruleset) -> None:
        """Replace the table with C{rules} in one transaction. @raise NftError: nft refused."""
        text = render(self.table, rules)
        d: Deferred[ProcessResult] = self._runner.run([self._nft, "-f", "-"], stdin=text.encode())
        result = await d
        if not result.ok:
            raise NftError(
                f"nft -f failed ({result.rc}): {result.stderr.decode('utf-8', 'replace').strip()}"
            )

    async def remove(self) -> None:
        """Delete the table (no error when it does not exist)."""
        text = f"table ip {self.table} {{}}\ndelete table ip {self.table}\n"
        result = await self._runner.run([self._nft, "-f", "-"], stdin=text.encode())
        if not result.ok:
            raise NftError(f"nft delete table failed: {result.stderr.decode().strip()}")
