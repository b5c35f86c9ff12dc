"""Pure parts of networking: the nft rendering, the DNS answers, port and resolv parsing (issue 5)."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import InvalidParameter
from pyd.drivers.network.dns import DnsServer, _Factory
from pyd.drivers.network.nft import (
    BridgeRules,
    PortRule,
    Ruleset,
    render,
    render_dns,
    table_name,
)
from pyd.engine import resolvconf
from pyd.engine.networks import (
    _mac_for,
    _port_key,
    _read_resolv,
    _upstreams,
    default_bridge_name,
    host_port_range,
)


class NftRenderTests(SynchronousTestCase):
    """The table text: one table, replaced atomically, masquerade only onto our bridges."""

    def test_table_name_per_exec_root(self) -> None:
        """The default exec root gets C{pyd}; others a stable hash, different per root."""
        self.assertEqual(table_name("/run/pyd"), "pyd")
        a, b = table_name("/tmp/a/exec"), table_name("/tmp/b/exec")
        self.assertNotEqual(a, b)
        self.assertEqual(a, table_name("/tmp/a/exec/"))
        self.assertTrue(a.startswith("pyd_"))

    def test_default_bridge_name_per_exec_root(self) -> None:
        """pyd0 for the default exec root, a distinct short name for every other."""
        self.assertEqual(default_bridge_name("/run/pyd/"), "pyd0")
        a, b = default_bridge_name("/x/exec"), default_bridge_name("/y/exec")
        self.assertNotEqual(a, b)
        self.assertLessEqual(len(a), 15)

    def test_atomic_replace_and_ports(self) -> None:
        """The script creates, deletes and re-creates the table; ports become DNAT rules."""
        text = render(
            "t",
            Ruleset(
                bridges=(BridgeRules("br0", "10.200.0.0/24"),),
                ports=(
                    PortRule("tcp", "127.0.0.1", 8080, "10.200.0.2", 80),
                    PortRule("udp", "", 5353, "10.200.0.2", 53),
                ),
            ),
        )
        lines = text.splitlines()
        self.assertEqual(lines[:3], ["table ip t {}", "delete table ip t", "table ip t {"])
        self.assertIn("ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.200.0.2:80", text)
        self.assertIn("    udp dport 5353 dnat to 10.200.0.2:53", text)
        # the host's own address on the bridge is left alone (masquerading would not change it)
        self.assertIn(
            'oifname "br0" ip saddr != 10.200.0.0/24 fib saddr type local masquerade', text
        )

    def test_no_outside_masquerade_by_default(self) -> None:
        """Without ip-masq nothing is masqueraded towards other interfaces, and it is dropped."""
        text = render("t", Ruleset(bridges=(BridgeRules("br0", "10.200.0.0/24"),)))
        self.assertNotIn("oifname != ", text.split("chain postrouting")[1].split("chain")[0])
        self.assertIn('iifname "br0" oifname != { "br0" } drop', text)
        masq = render("t", Ruleset(bridges=(BridgeRules("br0", "10.200.0.0/24", masquerade=True),)))
        self.assertIn('ip saddr 10.200.0.0/24 oifname != { "br0" } masquerade', masq)

    def test_isolation_internal_icc(self) -> None:
        """Bridges are isolated from each other; internal and icc=false add their drops."""
        text = render(
            "t",
            Ruleset(
                bridges=(
                    BridgeRules("a", "10.200.1.0/24", icc=False),
                    BridgeRules("b", "10.200.2.0/24", internal=True),
                )
            ),
        )
        self.assertIn('iifname "a" oifname { "b" } drop', text)
        self.assertIn('iifname "b" oifname { "a" } drop', text)
        self.assertIn('iifname "a" oifname "a" drop', text)
        self.assertIn('iifname "b" oifname != "b" drop', text)
        self.assertIn('oifname "b" iifname != "b" drop', text)

    def test_link_ports_before_icc_drop(self) -> None:
        """A legacy link on a bridge without icc opens the child's port to the parent (and the
        child's answers from it) before the bridge's own drop; on a bridge with icc nothing is
        added; the ip6 table has none (links are IPv4, as dockerd's)."""
        from pyd.drivers.network.nft import LinkRule

        rules = Ruleset(
            bridges=(
                BridgeRules("a", "10.200.1.0/24", icc=False, subnet6="fd00:1::/64"),
                BridgeRules("b", "10.200.2.0/24"),
            ),
            links=(
                LinkRule("a", "10.200.1.3", "10.200.1.2", "tcp", 80),
                LinkRule("b", "10.200.2.3", "10.200.2.2", "udp", 53),
            ),
            ipv6=True,
        )
        text = render("t", rules)
        ip4, ip6 = text.split("table ip6 t {\n", 1)
        fwd = ip4[ip4.index("chain forward") :].splitlines()
        open_ = (
            'iifname "a" oifname "a" ip saddr 10.200.1.3 ip daddr 10.200.1.2 tcp dport 80 accept'
        )
        back = 'iifname "a" oifname "a" ip saddr 10.200.1.2 ip daddr 10.200.1.3 tcp sport 80 accept'
        drop = 'iifname "a" oifname "a" drop'
        lines = [x.strip() for x in fwd]
        self.assertLess(lines.index(open_), lines.index(drop))
        self.assertLess(lines.index(back), lines.index(drop))
        self.assertNotIn("udp dport 53", text)
        self.assertNotIn("dport 80", ip6)

    def test_dns_table_in_container_namespace(self) -> None:
        """127.0.0.11:53 (udp and tcp) goes to the resolver's ports; replies leave from 53."""
        text = render_dns("127.0.0.11", 40001, 40002)
        lines = text.splitlines()
        self.assertEqual(
            lines[:3], ["table ip pyd_dns {}", "delete table ip pyd_dns", "table ip pyd_dns {"]
        )
        self.assertIn("type nat hook output priority -100; policy accept;", text)
        self.assertIn("ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:40001", text)
        self.assertIn("ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:40002", text)
        self.assertIn("type nat hook postrouting priority srcnat; policy accept;", text)
        self.assertIn("ip saddr 127.0.0.11 udp sport 40001 snat to :53", text)
        self.assertIn("ip saddr 127.0.0.11 tcp sport 40002 snat to :53", text)

    def test_ip6_table(self) -> None:
        """With ip6tables and a dual-stack bridge, an ip6 table of the same name follows the ip
        one: IPv6 subnets in its NAT rules, published ports DNAT to the containers' IPv6
        addresses (an IPv4 host address stays in the ip table, an IPv6 one in the ip6 table)."""
        rules = Ruleset(
            bridges=(
                BridgeRules("a", "10.200.1.0/24", masquerade=True, subnet6="fd00:db8:1::/64"),
                BridgeRules("b", "10.200.2.0/24"),
            ),
            ports=(
                PortRule("tcp", "", 8080, "10.200.1.2", 80, "fd00:db8:1::2"),
                PortRule("tcp", "127.0.0.1", 8081, "10.200.1.2", 80, "fd00:db8:1::2"),
                PortRule("tcp", "fd00:1::1", 8082, "10.200.1.2", 80, "fd00:db8:1::2"),
                PortRule("tcp", "", 8083, "10.200.2.2", 80),
            ),
            ipv6=True,
        )
        text = render("t", rules)
        v4, _, v6 = text.partition("table ip6 t {\n")
        self.assertTrue(v4.startswith("table ip t {}\ndelete table ip t\ntable ip t {"))
        self.assertIn("table ip6 t {}\ndelete table ip6 t\n", v4)
        self.assertIn("tcp dport 8080 dnat to [fd00:db8:1::2]:80", v6)
        self.assertIn("ip6 daddr fd00:1::1 tcp dport 8082 dnat to [fd00:db8:1::2]:80", v6)
        self.assertNotIn("8081", v6)
        self.assertNotIn("8083", v6)
        self.assertNotIn("8082", v4)
        self.assertIn('ip6 saddr fd00:db8:1::/64 oifname != { "a", "b" } masquerade', v6)
        self.assertIn('iifname "a" oifname { "b" } drop', v6)
        # ip6tables=false, or no dual-stack bridge: the ip6 table is only deleted.
        for off in (
            Ruleset(bridges=rules.bridges, ports=rules.ports, ipv6=False),
            Ruleset(bridges=(BridgeRules("b", "10.200.2.0/24"),), ipv6=True),
        ):
            text = render("t", off)
            self.assertIn("delete table ip6 t", text)
            self.assertNotIn("table ip6 t {\n", text)

    def test_host_table_has_no_dns_rules(self) -> None:
        """DNS no longer crosses the bridge: the host table has no port-53 redirect."""
        text = render("t", Ruleset(bridges=(BridgeRules("a", "10.200.1.0/24"),)))
        self.assertNotIn("dport 53", text)


class _Table:
    def __init__(self) -> None:
        self.names = {
            "web": ["10.200.0.5"],
            "db": ["10.200.0.6", "10.200.0.7"],
            "v6": ["10.200.0.8", "fd00:db8::8"],
        }
        self.keys: list[str] = []

    def lookup(self, key: str, name: str) -> list[str] | None:
        self.keys.append(key)
        return self.names.get(name)

    def reverse(self, key: str, address: str) -> str | None:
        return {"10.200.0.5": "web.appnet", "fd00:db8::8": "v6.appnet"}.get(address)

    def upstreams(self, key: str) -> list[str]:
        return []


class _Proto:
    def __init__(self) -> None:
        self.sent: list[dns.Message] = []

    def writeMessage(self, message: dns.Message, address: Any = None) -> None:
        self.sent.append(message)


class ResolverTests(SynchronousTestCase):
    """The resolver answers the engine's names and fails cleanly for the rest."""

    def _ask(self, name: str, qtype: int = dns.A) -> dns.Message:
        self.table = _Table()
        f = _Factory(self.table, "cid1", MemoryReactorClock())
        m = dns.Message(id=7, recDes=True)
        m.queries = [dns.Query(name, qtype, dns.IN)]
        m.timeReceived = 0.0
        p = _Proto()
        f.handleQuery(m, p, ("10.200.0.9", 40000))
        self.assertEqual(len(p.sent), 1)
        return p.sent[0]

    def test_a_records(self) -> None:
        """Known names get their addresses, case-insensitively, as the listener's container
        sees them."""
        r = self._ask("DB")
        self.assertEqual(self.table.keys, ["cid1"])
        self.assertEqual(r.rCode, dns.OK)
        self.assertEqual(
            sorted(a.payload.dottedQuad() for a in r.answers), ["10.200.0.6", "10.200.0.7"]
        )
        self.assertEqual(r.id, 7)

    def test_aaaa_for_known_name_is_empty(self) -> None:
        """A known name has no IPv6 address: NOERROR with no answers (not NXDOMAIN)."""
        r = self._ask("web", dns.AAAA)
        self.assertEqual((r.rCode, r.answers), (dns.OK, []))

    def test_aaaa_and_a_of_a_dual_stack_name(self) -> None:
        """A dual-stack container: A gets its IPv4 address only, AAAA its IPv6 one."""
        r = self._ask("v6", dns.AAAA)
        self.assertEqual(
            [socket.inet_ntop(socket.AF_INET6, a.payload.address) for a in r.answers],
            ["fd00:db8::8"],
        )
        self.assertEqual([a.type for a in r.answers], [dns.AAAA])
        r = self._ask("v6")
        self.assertEqual([a.payload.dottedQuad() for a in r.answers], ["10.200.0.8"])

    def test_ptr_ipv6(self) -> None:
        """ip6.arpa questions (32 nibbles) name the container owning the IPv6 address."""
        nibbles = ".".join(reversed("fd000db8000000000000000000000008"))
        r = self._ask(nibbles + ".ip6.arpa", dns.PTR)
        self.assertEqual(r.answers[0].payload.name.name, b"v6.appnet")

    def test_ptr(self) -> None:
        """Reverse lookups of container addresses name the container."""
        r = self._ask("5.0.200.10.in-addr.arpa", dns.PTR)
        self.assertEqual(r.answers[0].payload.name.name, b"web.appnet")

    def test_unknown_without_upstream(self) -> None:
        """Other names with no upstream server fail with SERVFAIL."""
        r = self._ask("example.invalid")
        self.assertEqual(r.rCode, dns.ESERVER)

    def test_serve_adopts_and_stops(self) -> None:
        """Sockets made elsewhere (in a container namespace) are adopted, closed, and stopped."""
        reactor = _PortReactor()
        s = DnsServer(_Table(), reactor)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.assertEqual(s.serve("cid1", udp, tcp), (5001, 5002))
        self.assertEqual(reactor.adopted, ["udp", "tcp"])
        self.assertEqual((udp.fileno(), tcp.fileno()), (-1, -1))  # the caller's copies closed
        self.assertEqual(s.ports("cid1"), (5001, 5002))
        s.stop("cid1")
        self.assertIsNone(s.ports("cid1"))
        self.assertEqual(reactor.stopped, 2)


class _Port:
    def __init__(self, owner: _PortReactor, port: int) -> None:
        self.owner, self.port = owner, port

    def getHost(self) -> Any:
        return type("H", (), {"port": self.port})()

    def stopListening(self) -> None:
        self.owner.stopped += 1


class _PortReactor:
    def __init__(self) -> None:
        self.adopted: list[str] = []
        self.stopped = 0

    def adoptDatagramPort(
        self, fd: int, family: int, proto: Any, maxPacketSize: int = 8192
    ) -> _Port:
        self.adopted.append("udp")
        return _Port(self, 5001)

    def adoptStreamPort(self, fd: int, family: int, factory: Any) -> _Port:
        self.adopted.append("tcp")
        return _Port(self, 5002)


class ParsingTests(SynchronousTestCase):
    """Port specs, host port ranges, MACs and resolv.conf."""

    def test_ports(self) -> None:
        """C{80}, C{80/udp}; bad specs are refused."""
        self.assertEqual(_port_key("80"), (80, "tcp"))
        self.assertEqual(_port_key("53/UDP"), (53, "udp"))
        self.assertRaises(InvalidParameter, _port_key, "x/tcp")
        self.assertRaises(InvalidParameter, _port_key, "80/icmp")
        self.assertEqual(host_port_range(""), (0, 0))
        self.assertEqual(host_port_range("8000-8010"), (8000, 8010))
        self.assertRaises(InvalidParameter, host_port_range, "9-1")
        for text in ("+22", " 22", "8_1", "\uff12\uff12", "65536", "1-+2"):
            self.assertRaises(InvalidParameter, host_port_range, text)
        self.assertRaises(InvalidParameter, _port_key, "+80/tcp")

    def test_mac(self) -> None:
        """Generated MACs are dockerd's 02:42 + the IPv4 address."""
        self.assertEqual(_mac_for("10.200.0.2"), "02:42:0a:c8:00:02")

    def test_upstreams(self) -> None:
        """Host servers (loopback too) are forwarded to from the host; a loopback --dns (the
        container's own loopback) is not sent to the host's loopback instead."""
        host = resolvconf.parse("nameserver 127.0.0.53\nnameserver 10.0.0.1\n")
        self.assertEqual(_upstreams(resolvconf.for_internal(host)), ["127.0.0.53", "10.0.0.1"])
        asked = resolvconf.with_overrides(host, ["127.0.0.1", "10.9.9.9"])
        self.assertEqual(_upstreams(resolvconf.for_internal(asked)), ["10.9.9.9"])

    def test_resolv(self) -> None:
        """nameserver, search and options lines are read; comments skipped."""
        path = _tmpfile(self)
        with open(path, "w") as f:
            f.write(
                "# x\nnameserver 10.0.0.53\nnameserver 127.0.0.53\nsearch a.test b.test\n"
                "options ndots:2\n"
            )
        self.assertEqual(
            _read_resolv(path), (["10.0.0.53", "127.0.0.53"], ["a.test", "b.test"], ["ndots:2"])
        )


def _tmpfile(case: SynchronousTestCase) -> str:
    """A temporary file path outside the source tree (trial's mktemp is relative to the cwd)."""
    import os
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="pyd-t-")
    case.addCleanup(shutil.rmtree, d, True)
    return os.path.join(d, "f")
