"""IPv6-only networks with the real CLI (28.x, API 1.48's C{--ipv4=false}), as dockerd 28 has them.

The topology of tests/e2e/test_network_ipv6.py: the daemon in namespace A of the test's own,
namespace B (another machine) joined to it by a veth pair; every address a ULA (fd00::/8) on
the test's own bridges and veths; the namespaces are deleted afterwards, with everything in them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.test_network_ipv6 import Setup, _inspect
from tests.helpers.images import DEFAULT_TAG

pytestmark = pytest.mark.e2e

HTTPD = "mkdir -p /www && echo hello-v6only > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def v6only() -> Iterator[Setup]:
    s = Setup()
    try:
        s.create()
        yield s
    finally:
        s.remove()


def test_ipv6_only_network(v6only: Setup) -> None:
    """docker network create --ipv4=false --ipv6: inspect and ls say so; containers have an
    IPv6 address and default route and no IPv4 address; names resolve to AAAA only; a port
    published with -p is on :: alone and answers over IPv6 from the other machine."""
    s = v6only
    d = s.daemon
    assert d is not None
    subnet = f"{s.prefix}:dd::/64"
    gateway = f"{s.prefix}:dd::1"
    d.docker("network", "create", "--ipv4=false", "--ipv6", "--subnet", subnet, "v6only")
    try:
        n = _inspect(d, "network", "inspect", "v6only")
        assert isinstance(n, dict)
        assert (n["EnableIPv4"], n["EnableIPv6"]) == (False, True)
        assert n["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": gateway}]
        ls = d.docker("network", "ls", "-f", "name=v6only", "--format", "{{.IPv4}} {{.IPv6}}")
        assert ls.stdout.split() == ["false", "true"]
        d.docker(
            "run", "-d", "--name", "web6", "--network", "v6only", "-p", "8086:80",
            DEFAULT_TAG, "sh", "-c", HTTPD,
        )  # fmt: skip
        d.docker("run", "-d", "--name", "cli6", "--network", "v6only", DEFAULT_TAG, "sleep", "600")
        web = _inspect(d, "inspect", "web6")
        assert isinstance(web, dict)
        ep = web["NetworkSettings"]["Networks"]["v6only"]
        assert (ep["IPAddress"], ep["IPPrefixLen"], ep["Gateway"]) == ("", 0, "")
        assert ep["GlobalIPv6Address"] == f"{s.prefix}:dd::2"
        assert (ep["GlobalIPv6PrefixLen"], ep["IPv6Gateway"]) == (64, gateway)
        assert ep["MacAddress"]
        # The kernel's view inside the container.
        assert d.docker("exec", "cli6", "ip", "-4", "-o", "addr", "show", "eth0").stdout == ""
        assert f"{s.prefix}:dd::3/64" in d.docker("exec", "cli6", "ip", "-6", "addr").stdout
        route = d.docker("exec", "cli6", "ip", "-6", "route", "show", "default").stdout
        assert f"default via {gateway}" in route
        # Names: AAAA answers, no A records.
        r = d.docker("exec", "cli6", "nslookup", "-type=AAAA", "web6", check=False)
        assert f"{s.prefix}:dd::2" in r.stdout, r.stdout + r.stderr
        r = d.docker("exec", "cli6", "nslookup", "-type=A", "web6", check=False)
        assert "Address" not in r.stdout.split("answer:")[-1], r.stdout + r.stderr
        r = d.docker("exec", "cli6", "ping", "-6", "-c1", "-W5", "web6", check=False)
        assert r.returncode == 0 and f"{s.prefix}:dd::2" in r.stdout, r.stdout + r.stderr
        # -p 8086:80 is bound on IPv6 only, and answers from the other machine.
        assert d.docker("port", "web6", "80").stdout.split() == ["[::]:8086"]
        s.wait_answer_from_b(8086, "hello-v6only")
        # An IPv4 address asked for: moby 28's 400.
        r = d.docker(
            "run", "--rm", "--network", "v6only", "--ip", "10.1.2.3", DEFAULT_TAG, "true",
            check=False,
        )  # fmt: skip
        assert r.returncode != 0
        assert "user specified IP address is supported only when connecting" in r.stderr
        r = d.docker("network", "create", "--ipv4=false", "neither", check=False)
        assert r.returncode != 0 and "IPv4 or IPv6 must be enabled" in r.stderr
    finally:
        d.docker("rm", "-f", "web6", "cli6", check=False)
        d.docker("network", "rm", "v6only", check=False)
