"""Network namespaces joined to the root namespace by veth pairs, for multi-host tests.

Each L{NetnsHost} is one "machine": a netns with loopback up and one veth whose peer stays in the
root namespace; the pair gets a /30 of its own in 10.2xx.x.x so the root namespace reaches every
host by its address. L{NetnsHost.remove} deletes the namespace and the veth (deleting one end
deletes both) and is safe to call twice.
"""

from __future__ import annotations

import random
import subprocess
import uuid


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def random_prefix() -> str:
    """Two octets C{10.2xx.y} for one test's hosts."""
    return f"10.{random.randint(200, 254)}.{random.randint(0, 255)}"


class NetnsHost:
    """One network namespace with the address C{addr}, reachable from the root namespace."""

    def __init__(self, prefix: str, index: int) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns = f"pyd-t-{tag}"
        self.root_if = f"pydr{tag}"
        self.ns_if = f"pydn{tag}"
        base = 4 * index
        self.gateway = f"{prefix}.{base + 1}"
        self.addr = f"{prefix}.{base + 2}"
        self.created = False

    def create(self) -> NetnsHost:
        """Make the namespace, the veth pair and the addresses."""
        self.created = True
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.root_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.ns)
        _ip("addr", "add", f"{self.gateway}/30", "dev", self.root_if)
        _ip("link", "set", self.root_if, "up")
        _ip("-n", self.ns, "addr", "add", f"{self.addr}/30", "dev", self.ns_if)
        _ip("-n", self.ns, "link", "set", self.ns_if, "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        _ip("-n", self.ns, "route", "add", "default", "via", self.gateway)
        return self

    def enable_forwarding(self) -> None:
        """Let this "machine" forward IPv4 before its daemon starts (the daemon turns it on as
        well, on its default ip-forward), so ports it publishes answer from the root namespace."""
        subprocess.run(
            [*self.prefix_argv(), "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            capture_output=True,
            check=True,
        )

    def prefix_argv(self) -> list[str]:
        """Run a command inside the namespace: prepend this.

        nsenter enters the network namespace only; `ip netns exec` would also unshare the mount
        namespace and remount /sys, which hides /sys/fs/cgroup from crun.
        """
        return ["nsenter", f"--net=/run/netns/{self.ns}"]

    def remove(self) -> None:
        """Delete the veth and the namespace (idempotent)."""
        if not self.created:
            return
        _ip("link", "del", self.root_if, check=False)
        _ip("netns", "del", self.ns, check=False)
        self.created = False
