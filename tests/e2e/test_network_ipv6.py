"""IPv6 networking with the real CLI and docker-py, as dockerd 28 does it.

Topology: the daemon runs inside namespace A of the test's own (on its defaults: it turns on
IPv4 and IPv6 forwarding there, never in the root namespace); namespace B ("another machine") is
joined to A by one veth pair with ULA addresses. Every address is a ULA (fd00::/8) on the test's
own bridges and veths: no packet leaves the namespaces the test made, which are deleted (with
every bridge and table in them) even when a test fails.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import PydDaemon, wait_until
from tests.helpers.images import DEFAULT_TAG, load_busybox

pytestmark = pytest.mark.e2e


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _in(ns: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{ns}", *argv], capture_output=True, text=True, check=check
    )


def _ula() -> str:
    """A random ULA /48 prefix in canonical text (C{fdxx:xxx:xxxx}, as the daemon prints it:
    no leading zeros), without the trailing C{::}."""
    while True:
        bits = int.from_bytes(os.urandom(5), "big")
        net = ipaddress.IPv6Network(((0xFD << 120) | (bits << 80), 48))
        text = str(net.network_address).removesuffix("::")
        if text.count(":") == 2:  # no zero group (it would be compressed away)
            return text


class Setup:
    """Namespaces A (the daemon's host) and B (a client machine) over a ULA /64 veth link,
    and the daemon in A."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.a, self.b = f"pyd-6a{tag}", f"pyd-6b{tag}"
        link = _ula()
        self.a_addr, self.b_addr = f"{link}::1", f"{link}::2"
        self.prefix = _ula()  # the user network's /64s come from here
        self.bridge6 = f"{_ula()}::/64"  # the default bridge's fixed-cidr-v6
        self.made: list[str] = []
        self.daemon: PydDaemon | None = None
        self.root_forward = Path("/proc/sys/net/ipv6/conf/all/forwarding").read_text()

    def create(self) -> PydDaemon:
        for ns in (self.a, self.b):
            _ip("netns", "add", ns)
            self.made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip(
            "-n", self.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", self.b
        )
        _ip("-n", self.a, "addr", "add", f"{self.a_addr}/64", "dev", "va", "nodad")
        _ip("-n", self.b, "addr", "add", f"{self.b_addr}/64", "dev", "vb", "nodad")
        _ip("-n", self.a, "link", "set", "va", "up")
        _ip("-n", self.b, "link", "set", "vb", "up")
        d = PydDaemon(
            wrapper=["nsenter", f"--net=/run/netns/{self.a}"],
            extra_args=[
                "--ipv6",
                "--fixed-cidr-v6",
                self.bridge6,
                "--default-address-pool",
                f"base=10.{int.from_bytes(os.urandom(1), 'big') % 50 + 200}.0.0/16,size=24",
                "--default-address-pool",
                f"base={self.prefix}::/56,size=64",
            ],
        )
        self.daemon = d
        d.start()
        load_busybox(d)
        return d

    def wait_answer_from_b(self, port: int, text: str) -> None:
        """Wait until B fetches C{text} from A's address on C{port} (the published port, over
        IPv6, from the other machine); else fail with the last answer, A's ruleset and the
        daemon's log."""
        assert self.daemon is not None
        got: list[str] = []

        def answered() -> bool:
            r = _in(self.b, sys.executable, "-c", FETCH, f"http://[{self.a_addr}]:{port}/")
            got.append(r.stdout + r.stderr)
            return r.returncode == 0 and text in r.stdout

        try:
            wait_until(answered, timeout=30)
        except AssertionError:
            nft = _in(self.a, "nft", "list", "ruleset").stdout
            raise AssertionError(
                f"no answer from B: {got[-1:]}\n{nft}\n{self.daemon.log()[-3000:]}"
            ) from None

    def remove(self) -> None:
        if self.daemon is not None:
            self.daemon.cleanup()
        for ns in self.made:
            _ip("netns", "del", ns, check=False)


@pytest.fixture(scope="module")
def v6() -> Iterator[Setup]:
    s = Setup()
    try:
        s.create()
        yield s
    finally:
        s.remove()


def _inspect(d: PydDaemon, *args: str) -> object:
    return json.loads(d.docker(*args, "--format", "{{json .}}").stdout)


FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())"


def test_cli_dual_stack_network(v6: Setup) -> None:
    """docker network create --ipv6 --subnet; run with --ip6; connect --ip6; inspect shows what
    dockerd shows; a container reaches another over IPv6 by name (AAAA from the embedded DNS);
    a published port answers over IPv6 from namespace B (ip6 DNAT, IPv6 forwarding in A)."""
    d = v6.daemon
    assert d is not None
    subnet = f"{v6.prefix}:ff::/64"
    d.docker("network", "create", "--ipv6", "--subnet", subnet, "v6net")
    n = _inspect(d, "network", "inspect", "v6net")
    assert isinstance(n, dict)
    assert n["EnableIPv6"] is True
    # moby's buildIPAMResources: the subnet asked for first, then the IPv4 one of the pools.
    assert n["IPAM"]["Config"][0] == {"Subnet": subnet, "Gateway": f"{v6.prefix}:ff::1"}
    assert ":" not in n["IPAM"]["Config"][1]["Subnet"]
    ls = d.docker("network", "ls", "--filter", "name=v6net", "--format", "{{.IPv6}}").stdout
    assert ls.strip() == "true"

    d.docker(
        "run", "-d", "--name", "web", "--network", "v6net", "-p", "8080:80", DEFAULT_TAG,
        "sh", "-c", "mkdir -p /www && echo hello-v6 > /www/index.html && exec httpd -f -p 80 -h /www",
    )  # fmt: skip
    d.docker(
        "run", "-d", "--name", "cli", "--network", "v6net", "--ip6", f"{v6.prefix}:ff::99",
        DEFAULT_TAG, "sleep", "600",
    )  # fmt: skip
    web = _inspect(d, "inspect", "web")
    assert isinstance(web, dict)
    ep = web["NetworkSettings"]["Networks"]["v6net"]
    assert ep["GlobalIPv6Address"] == f"{v6.prefix}:ff::2"
    assert ep["GlobalIPv6PrefixLen"] == 64
    assert ep["IPv6Gateway"] == f"{v6.prefix}:ff::1"
    assert ep["IPAddress"]  # dual-stack: IPv4 too
    cli = _inspect(d, "inspect", "cli")
    assert isinstance(cli, dict)
    cli_ep = cli["NetworkSettings"]["Networks"]["v6net"]
    assert cli_ep["GlobalIPv6Address"] == f"{v6.prefix}:ff::99"
    assert cli_ep["IPAMConfig"]["IPv6Address"] == f"{v6.prefix}:ff::99"

    # By name: busybox's ping -6 asks 127.0.0.11 for AAAA.
    r = d.docker("exec", "cli", "ping", "-6", "-c1", "-W5", "web", check=False)
    assert r.returncode == 0 and f"{v6.prefix}:ff::2" in r.stdout, r.stdout + r.stderr
    r = d.docker("exec", "cli", "nslookup", "-type=AAAA", "web", check=False)
    assert f"{v6.prefix}:ff::2" in r.stdout, r.stdout + r.stderr
    body = d.docker("exec", "cli", "wget", "-qO-", f"http://[{v6.prefix}:ff::2]/").stdout
    assert body.strip() == "hello-v6"

    # The published port, over IPv6, from the other machine.
    v6.wait_answer_from_b(8080, "hello-v6")
    assert _in(v6.a, "sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.strip() == "1"
    # [::1] on the host itself: NAT cannot carry it, the daemon's userland proxy does (to the
    # container's IPv6 address), and the inspect shows the port on :: too.
    r = _in(v6.a, sys.executable, "-c", FETCH, "http://[::1]:8080/")
    assert "hello-v6" in r.stdout, r.stdout + r.stderr
    ports = d.docker("port", "web", "80").stdout.split()
    assert ports == ["0.0.0.0:8080", "[::]:8080"], ports

    # connect --ip6 to a second IPv6 network (from the configured IPv6 pool).
    d.docker("network", "create", "--ipv6", "second")
    sub2 = _inspect(d, "network", "inspect", "second")
    assert isinstance(sub2, dict)
    second6 = sub2["IPAM"]["Config"][1]["Subnet"]
    assert second6.startswith(f"{v6.prefix}:") and second6.endswith("::/64")
    addr = second6.replace("::/64", "::77")
    d.docker("network", "connect", "--ip6", addr, "second", "cli")
    cli = _inspect(d, "inspect", "cli")
    assert isinstance(cli, dict)
    assert cli["NetworkSettings"]["Networks"]["second"]["GlobalIPv6Address"] == addr
    addrs = d.docker("exec", "cli", "ip", "-6", "addr").stdout
    assert f"{addr}/64" in addrs

    # dockerd's errors for a bad --ip6.
    r = d.docker("run", "--rm", "--network", "v6net", "--ip6", "fd00:dead::1", DEFAULT_TAG,
                 "true", check=False)  # fmt: skip
    assert r.returncode != 0 and "no configured subnet contains IP address fd00:dead::1" in r.stderr
    r = d.docker("run", "--rm", "--network", "v6net", "--ip6", f"{v6.prefix}:ff::99",
                 DEFAULT_TAG, "true", check=False)  # fmt: skip
    assert r.returncode != 0 and "Address already in use" in r.stderr
    d.docker("rm", "-f", "web", "cli")
    d.docker("network", "rm", "v6net", "second")


def test_default_bridge_dual_stack(v6: Setup) -> None:
    """--ipv6 --fixed-cidr-v6: the default bridge is dual-stack; the top-level NetworkSettings
    fields show the IPv6 address, prefix and gateway, as dockerd does."""
    d = v6.daemon
    assert d is not None
    bridge = _inspect(d, "network", "inspect", "bridge")
    assert isinstance(bridge, dict)
    assert bridge["EnableIPv6"] is True
    gw = v6.bridge6.replace("::/64", "::1")
    assert bridge["IPAM"]["Config"][1] == {"Subnet": v6.bridge6, "Gateway": gw}
    d.docker("run", "-d", "--name", "plain", DEFAULT_TAG, "sleep", "600")
    try:
        c = _inspect(d, "inspect", "plain")
        assert isinstance(c, dict)
        ns = c["NetworkSettings"]
        assert ns["GlobalIPv6Address"].startswith(v6.bridge6.replace("::/64", "::"))
        assert (ns["GlobalIPv6PrefixLen"], ns["IPv6Gateway"]) == (64, gw)
        assert ns["Networks"]["bridge"]["GlobalIPv6Address"] == ns["GlobalIPv6Address"]
        routes = d.docker("exec", "plain", "ip", "-6", "route").stdout
        assert f"default via {gw}" in routes
    finally:
        d.docker("rm", "-f", "plain")


def test_docker_py(v6: Setup) -> None:
    """docker-py: networks.create(enable_ipv6=True, ipam=...), connect(ipv6_address=...),
    and the container's attrs."""
    import docker
    from docker.types import IPAMConfig, IPAMPool

    d = v6.daemon
    assert d is not None
    client = docker.DockerClient(base_url=d.host, version="auto")
    subnet = f"{v6.prefix}:ee::/64"
    net = client.networks.create(
        "pynet",
        driver="bridge",
        enable_ipv6=True,
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)]),
    )
    c = client.containers.create(DEFAULT_TAG, "sleep 600", name="pyc")
    try:
        net.connect(c, ipv6_address=f"{v6.prefix}:ee::42")
        c.start()
        c.reload()
        ep = c.attrs["NetworkSettings"]["Networks"]["pynet"]
        assert ep["GlobalIPv6Address"] == f"{v6.prefix}:ee::42"
        net.reload()
        assert net.attrs["EnableIPv6"] is True
        assert [x["IPv6Address"] for x in net.attrs["Containers"].values()] == [
            f"{v6.prefix}:ee::42/64"
        ]
        r = c.exec_run(["ping", "-6", "-c1", "-W5", f"{v6.prefix}:ee::1"])
        assert r.exit_code == 0, r.output
    finally:
        c.remove(force=True)
        net.remove()
        client.close()


def test_root_namespace_untouched(v6: Setup) -> None:
    """The daemon's IPv6 forwarding is its namespace's: the root namespace's is as it was."""
    assert v6.daemon is not None
    inside = _in(v6.a, "sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.strip()
    assert inside == "1"
    assert Path("/proc/sys/net/ipv6/conf/all/forwarding").read_text() == v6.root_forward
