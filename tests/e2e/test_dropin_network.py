"""dockerd's networking defaults (issue 17): a daemon on its defaults, in a network namespace of the
test's own, turns on forwarding there, masquerades its default bridge, and serves a published port
to a client in a second namespace; nothing of it reaches the root namespace.

Topology: namespace A (the "host" running pyd) and namespace B (a "client machine") joined by one
veth pair with a /30 of their own; the root namespace has no part in it, so no packet leaves the
namespaces the test made.
"""

from __future__ import annotations

import ipaddress
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import PydDaemon, wait_until
from tests.helpers.images import DEFAULT_TAG, load_busybox


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _in(ns: str, *argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True, text=True, **kw
    )  # type: ignore[call-overload]  # **kw holds subprocess.run's keyword arguments of mixed types


class Pair:
    """Namespaces A and B joined by a veth pair (A: .1, B: .2 of a /30)."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.a, self.b = f"pyd-t-a{tag}", f"pyd-t-b{tag}"
        prefix = f"10.{random.randint(200, 254)}.{random.randint(0, 255)}"
        base = 4 * random.randint(0, 63)
        self.a_addr, self.b_addr = f"{prefix}.{base + 1}", f"{prefix}.{base + 2}"
        self.made: list[str] = []

    def create(self) -> None:
        for ns in (self.a, self.b):
            _ip("netns", "add", ns)
            self.made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip(
            "-n", self.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", self.b
        )
        _ip("-n", self.a, "addr", "add", f"{self.a_addr}/30", "dev", "va")
        _ip("-n", self.b, "addr", "add", f"{self.b_addr}/30", "dev", "vb")
        _ip("-n", self.a, "link", "set", "va", "up")
        _ip("-n", self.b, "link", "set", "vb", "up")

    def remove(self) -> None:
        for ns in self.made:
            _ip("netns", "del", ns, check=False)
        self.made = []


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    try:
        p.create()
        yield p
    finally:
        p.remove()


# Answers each connection with the address it came from (run inside namespace B).
PEER_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4)
print("ready", flush=True)
while True:
    c, addr = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\nfrom " + addr[0].encode())
    c.close()
"""


# A client in namespace B (host busybox's wget is static glibc and crashes on name lookups).
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())"


def test_defaults_forward_masquerade_and_publish(pair: Pair) -> None:
    """On its defaults, in namespace A: ip_forward becomes 1, the default bridge's subnet is
    masqueraded (a container reaching B is seen from A's address), and a published port answers
    a client in namespace B."""
    # A new namespace copies the root's IPv4 forwarding (net.core.devconf_inherit_init_net=0):
    # start from "off" whatever the root has, so that the daemon must turn it on.
    _in(pair.a, "sysctl", "-w", "net.ipv4.ip_forward=0", check=True)
    before = _in(pair.a, "sysctl", "-n", "net.ipv4.ip_forward", check=True).stdout.strip()
    assert before == "0"
    root_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    d = PydDaemon(wrapper=["nsenter", f"--net=/run/netns/{pair.a}"])
    server: subprocess.Popen[str] | None = None
    try:
        d.start()
        assert "--ip-forward=false" not in d.argv() and "--ip-masq=false" not in d.argv()
        after = _in(pair.a, "sysctl", "-n", "net.ipv4.ip_forward", check=True).stdout.strip()
        assert after == "1"
        info = d.docker("info", "--format", "{{.IPv4Forwarding}}").stdout.strip()
        assert info == "true"
        table = _in(pair.a, "nft", "list", "table", "ip", d.nft_table, check=True).stdout
        subnet = ipaddress.ip_interface(d.bip).network
        assert f"ip saddr {subnet} oifname != " in table and "masquerade" in table

        load_busybox(d)
        # Masquerade: a container's connection to B arrives from A's own address.
        server = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{pair.b}", sys.executable, "-c", PEER_SERVER,
             pair.b_addr, "8099"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        out = d.docker(
            "run", "--rm", DEFAULT_TAG, "wget", "-qO-", f"http://{pair.b_addr}:8099/"
        ).stdout
        assert out.strip() == f"from {pair.a_addr}"

        # A published port answers a client in B.
        d.docker(
            "run", "-d", "--name", "web", "-p", "8080:80", DEFAULT_TAG,
            "sh", "-c", "mkdir -p /www && echo hello-from-pyd > /www/index.html && "
            "exec httpd -f -p 80 -h /www",
        )  # fmt: skip
        got: list[str] = []

        def answered() -> bool:
            r = _in(pair.b, sys.executable, "-c", FETCH, f"http://{pair.a_addr}:8080/")
            got.append(r.stdout + r.stderr)
            return r.returncode == 0 and "hello-from-pyd" in r.stdout

        try:
            wait_until(answered, timeout=30)
        except AssertionError:
            nft = _in(pair.a, "nft", "list", "ruleset").stdout
            raise AssertionError(
                f"no answer from B: {got[-1:]}\n{nft}\n{d.log()[-3000:]}"
            ) from None
    finally:
        if server is not None:
            server.kill()
            server.wait()
        d.cleanup()
    # The root namespace's forwarding was never touched.
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == root_forward


def test_root_namespace_daemons_do_not_forward(tmp_path: Path) -> None:
    """The test harness's rule: a daemon in the root namespace runs with --ip-forward=false
    --ip-masq=false."""
    argv = PydDaemon(str(tmp_path)).argv()
    assert "--ip-forward=false" in argv and "--ip-masq=false" in argv


def _forward_rules(ns: str) -> list[str]:
    """The host's filter FORWARD of namespace C{ns} and every pyd chain, as iptables -S."""
    out = _in(ns, "iptables", "-S", check=True).stdout.splitlines()
    return [line for line in out if "FORWARD" in line or "PYD" in line]


def test_forward_policy_drop(pair: Pair) -> None:
    """With the host's FORWARD policy at drop (iptables-nft's table ip filter) in namespace A,
    the daemon puts one jump at the head of FORWARD: a published port answers a client in B
    and a container reaches B; the operator's hook chain is jumped to first; the daemon's
    stop (nothing running) removes the jump and chains, and a start after kill -9 replaces
    the jump the crashed run left instead of adding a second one."""
    _in(pair.a, "iptables", "-P", "FORWARD", "DROP", check=True)
    server: subprocess.Popen[str] | None = None
    d = PydDaemon(wrapper=["nsenter", f"--net=/run/netns/{pair.a}"])
    chain, user = d.nft_table.upper() + "-FORWARD", d.nft_table.upper() + "-USER"
    jump = f'-A FORWARD -m comment --comment "pyd:{d.nft_table}" -j {chain}'
    try:
        d.start()
        rules = _forward_rules(pair.a)
        forward = _in(pair.a, "iptables", "-S", "FORWARD", check=True).stdout.splitlines()
        assert forward[:2] == ["-P FORWARD DROP", jump], rules
        assert f"-A {chain} -j {user}" in rules and f"-A {chain} -i {d.bridge} -j ACCEPT" in rules
        load_busybox(d)
        d.docker(
            "run", "-d", "--name", "web", "-p", "8080:80", DEFAULT_TAG,
            "sh", "-c", "mkdir -p /www && echo hello-behind-drop > /www/index.html && "
            "exec httpd -f -p 80 -h /www",
        )  # fmt: skip
        got: list[str] = []

        def answered() -> bool:
            r = _in(pair.b, sys.executable, "-c", FETCH, f"http://{pair.a_addr}:8080/")
            got.append(r.stdout + r.stderr)
            return r.returncode == 0 and "hello-behind-drop" in r.stdout

        try:
            wait_until(answered, timeout=30)
        except AssertionError:
            raise AssertionError(
                f"no answer from B: {got[-1:]}\n{_forward_rules(pair.a)}\n{d.log()[-3000:]}"
            ) from None
        # Outbound: a container reaches B (masqueraded) through the drop policy too.
        server = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{pair.b}", sys.executable, "-c", PEER_SERVER,
             pair.b_addr, "8098"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        out = d.docker(
            "run", "--rm", DEFAULT_TAG, "wget", "-qO-", f"http://{pair.b_addr}:8098/"
        ).stdout
        assert out.strip() == f"from {pair.a_addr}"
        # The operator's hook decides first: a DROP there for the client cuts the port off.
        _in(pair.a, "iptables", "-A", user, "-s", pair.b_addr, "-j", "DROP", check=True)
        r = _in(pair.b, sys.executable, "-c", FETCH, f"http://{pair.a_addr}:8080/")
        assert r.returncode != 0
        _in(pair.a, "iptables", "-F", user, check=True)

        # kill -9 while a container runs, start: still exactly one jump.
        d.kill9()
        assert _forward_rules(pair.a).count(jump) == 1
        d.start()
        assert _forward_rules(pair.a).count(jump) == 1
        # Stop with nothing running: pyd's rules go, the host's policy stays.
        d.docker("rm", "-f", "web")
        d.stop()
        assert _forward_rules(pair.a) == ["-P FORWARD DROP"]
    finally:
        if server is not None:
            server.kill()
            server.wait()
        d.cleanup()
