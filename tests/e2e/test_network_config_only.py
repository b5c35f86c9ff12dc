"""Config-only networks with the real docker CLI (issue 15): a container on a network created
C{--config-from} a configuration network gets its address from the configuration's range and
its MTU from the configuration's options.

Traffic goes only to the test daemon's own bridge.
"""

from __future__ import annotations

import ipaddress
import json
import random

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import load_busybox

pytestmark = pytest.mark.e2e

IMG = "pyd-test/busybox:latest"


def test_container_on_config_from_network(pyd_daemon: PydDaemon) -> None:
    """The container's interface has an address of the configuration's IP range, the
    configuration's gateway answers it, and the configuration network itself stays unusable
    and in place while the network made from it exists."""
    d = pyd_daemon
    load_busybox(d)
    net = f"10.246.{random.randint(0, 255)}"
    d.docker(
        "network", "create", "--config-only", "--subnet", f"{net}.0/24", "--gateway",
        f"{net}.1", "--ip-range", f"{net}.64/26", "-o", "com.docker.network.driver.mtu=1400",
        "cfg",
    )  # fmt: skip
    try:
        d.docker("network", "create", "--config-from", "cfg", "from")
        d.docker("run", "-d", "--name", "c1", "--network", "from", IMG, "sleep", "300")
        shown = d.docker(
            "inspect", "-f", "{{json .NetworkSettings.Networks.from}}", "c1"
        ).stdout  # fmt: skip
        settings = json.loads(shown)
        ip = ipaddress.IPv4Address(settings["IPAddress"])
        assert ip in ipaddress.IPv4Network(f"{net}.64/26"), settings
        assert (settings["IPPrefixLen"], settings["Gateway"]) == (24, f"{net}.1")
        # What the container itself has, from the kernel.
        addr = d.docker("exec", "c1", "ip", "-4", "-o", "addr", "show", "eth0").stdout
        assert f"inet {ip}/24 " in addr, addr
        assert d.docker("exec", "c1", "cat", "/sys/class/net/eth0/mtu").stdout.strip() == "1400"
        d.docker("exec", "c1", "ping", "-c1", "-W5", f"{net}.1")
        r = d.docker("network", "rm", "cfg", check=False)
        assert r.returncode != 0
        assert 'configuration network "cfg" is in use' in r.stderr
        r = d.docker("run", "--rm", "--network", "cfg", IMG, "true", check=False)
        assert "cannot create endpoint on configuration-only network" in r.stderr
    finally:
        d.docker("rm", "-f", "c1", check=False)
        d.docker("network", "rm", "from", check=False)
        d.docker("network", "rm", "cfg", check=False)
    listed = d.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "cfg" not in listed and "from" not in listed
