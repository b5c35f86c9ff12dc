"""A real NetworkService on the real kernel for integration tests, with cleanup of everything.

The service runs synchronously: inline Blocking, an in-memory database, a ProcessRunner that
calls nft directly. Bridges, namespaces and the nft table it makes are removed by L{close}.
Containers are stand-ins: rows in the database and processes started with nsenter in the
namespace the service prepared (busybox httpd, sleep).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from sqlalchemy import insert
from twisted.internet.defer import Deferred, fail, succeed

from pyd.core.seams import InlineBlocking
from pyd.drivers.network.netlink import NetlinkDriver
from pyd.drivers.network.nft import FirewallDriver, table_name
from pyd.drivers.process import ProcessFailed, ProcessResult
from pyd.engine.networks import ContainerRef, NetworkConfig, NetworkService
from pyd.engine.spec import EndpointRequest, NetworkRequest, network_request, parse_endpoint
from pyd.state.models import ContainerRow
from pyd.state.networks import NetworkRepository
from tests.fakes.events import FakeEvents
from tests.fakes.network import FakeResolver
from tests.helpers.daemon import _free_bip
from tests.helpers.memdb import memory_db


class SyncRunner:
    """A ProcessRunner that runs the program at once (tests only); C{env}, C{cwd} and C{check}
    as the daemon's runner takes them (child_fds are not passed: no caller here needs them)."""

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
        r = subprocess.run(
            list(argv), input=stdin, env=env, cwd=cwd, capture_output=True, check=False
        )
        result = ProcessResult(tuple(argv), r.returncode, r.stdout, r.stderr)
        if check and r.returncode != 0:
            return fail(ProcessFailed(result))
        return succeed(result)


class Containers:
    """A ContainerLookup over a dict (tests register their stand-in containers here)."""

    def __init__(self) -> None:
        self.refs: dict[str, ContainerRef] = {}

    async def network_container(self, ref: str) -> ContainerRef:
        from pyd.core.errors import NotFound

        for c in self.refs.values():
            if ref in (c.id, c.name) or (len(ref) >= 3 and c.id.startswith(ref)):
                return c
        raise NotFound(f"No such container: {ref}")

    async def networks_materialized(self, container_id: str) -> None:
        c = self.refs.get(container_id)
        if c is not None:
            self.refs[container_id] = attrs.evolve(c, networks_materialized=True)

    async def endpoint_config_changed(
        self, container_id: str, network: str, endpoint: EndpointRequest | None
    ) -> None:
        pass


def net_request(
    host_config: Mapping[str, Any] | None = None,
    endpoints: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> NetworkRequest:
    """A create request's networking, typed: a HostConfig's ports/DNS/hosts and an
    C{EndpointsConfig} (wire form, Go's field names)."""
    return attrs.evolve(
        network_request(host_config),
        endpoints={k: parse_endpoint(v) for k, v in (endpoints or {}).items()},
    )


def endpoints(**eps: Mapping[str, Any]) -> dict[str, EndpointRequest]:
    """An C{EndpointsConfig} (network -> wire settings), typed."""
    return {k: parse_endpoint(v) for k, v in eps.items()}


class NetHarness:
    """One NetworkService with its own exec root, default bridge, subnets and table."""

    def __init__(self, **config: Any) -> None:
        self.base = tempfile.mkdtemp(prefix="pyd-net-")
        self.exec_root = os.path.join(self.base, "exec")
        self.bridge = "pydt" + os.urandom(4).hex()
        self.pool_base = f"10.{random.randint(200, 249)}.0.0/16"
        cfg = {
            "exec_root": self.exec_root,
            "bridge": self.bridge,
            "bip": _free_bip(),
            "default_address_pools": ((self.pool_base, 24),),
            "resolv_conf": os.path.join(self.base, "resolv.conf"),
        }
        cfg.update(config)
        with open(str(cfg["resolv_conf"]), "w") as f:
            f.write("nameserver 127.0.0.53\nsearch example.test\n")
        self.config = NetworkConfig(**cfg)
        self.db = memory_db()
        self.events = FakeEvents()
        self.containers = Containers()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.netlink = NetlinkDriver()
        self.firewall = FirewallDriver(SyncRunner(), table_name(self.exec_root))
        self.resolver = FakeResolver()
        self.service = self.new_service()

    def new_service(self) -> NetworkService:
        """A service over the same database and exec root (as after a daemon restart)."""
        return NetworkService(
            NetworkRepository(self.db),
            self.netlink,
            self.firewall,
            self.resolver,
            InlineBlocking(),
            self.events,
            self.config,
            lookup=self.containers,
        )

    def add_container(self, name: str, network_mode: str = "default") -> str:
        """Insert a container row and register it for lookups; returns its id."""
        cid = os.urandom(32).hex()
        with self.db.engine.begin() as conn:
            conn.execute(
                insert(ContainerRow).values(
                    id=cid,
                    name="/" + name,
                    image_id="sha256:" + "0" * 64,
                    image_ref="busybox",
                    created=0,
                    status="created",
                    config={},
                    host_config={},
                    state={},
                    network_settings={},
                    mounts=[],
                    restart_count=0,
                    extra={},
                )
            )
        self.containers.refs[cid] = ContainerRef(cid, name, False, network_mode)
        return cid

    def set_running(self, cid: str, running: bool) -> None:
        c = self.containers.refs[cid]
        self.containers.refs[cid] = ContainerRef(c.id, c.name, running, c.network_mode)

    def spawn(self, netns: str, *argv: str) -> subprocess.Popen[bytes]:
        """Start a process inside a namespace (killed by L{close})."""
        p = subprocess.Popen(
            ["nsenter", f"--net={netns}", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(p)
        return p

    def httpd(self, netns: str, text: str, port: int = 80) -> subprocess.Popen[bytes]:
        """busybox httpd serving C{text} as index.html on C{port} in the namespace."""
        www = tempfile.mkdtemp(dir=self.base)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write(text)
        return self.spawn(netns, "busybox", "httpd", "-f", "-p", str(port), "-h", www)

    def in_ns(
        self, netns: str, *argv: str, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the namespace and wait for it."""
        return subprocess.run(
            ["nsenter", f"--net={netns}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def close(self) -> None:
        """Kill the processes, remove namespaces, bridges and the table."""
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        netns_dir = os.path.join(self.exec_root, "netns")
        if os.path.isdir(netns_dir):
            for name in os.listdir(netns_dir):
                self.netlink.remove_netns(os.path.join(netns_dir, name))
            subprocess.run(["umount", "-l", netns_dir], capture_output=True, check=False)
        for n in list(self.service._networks.values()):
            if n.bridge:
                self.netlink.delete_link(n.bridge)
        self.netlink.delete_link(self.bridge)
        for family in ("ip", "ip6"):
            subprocess.run(
                ["nft", "delete", "table", family, self.firewall.table],
                capture_output=True,
                check=False,
            )
        self.db.close()
        shutil.rmtree(self.base, ignore_errors=True)


def http_get(host: str, port: int, timeout: float = 3) -> str:
    """A tiny HTTP GET (no proxies, no retries); returns the body."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.partition(b"\r\n\r\n")[2].decode()


def wait_http(host: str, port: int, tries: int = 50) -> str:
    """Retry L{http_get} while the server starts."""
    import time

    last: Exception | None = None
    for _ in range(tries):
        try:
            return http_get(host, port)
        except OSError as e:
            last = e
            time.sleep(0.1)
    raise AssertionError(f"no HTTP answer on {host}:{port}: {last}")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_FAKE_DNS = r"""
import socket, sys
from twisted.names import dns
addr, name, answer = sys.argv[1:4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 53))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(4096)
    m = dns.Message()
    m.fromStr(data)
    q = m.queries[0]
    print("query", q.name.name.decode(), dns.QUERY_TYPES.get(q.type, q.type), flush=True)
    r = dns.Message(id=m.id, answer=1, recDes=m.recDes, recAv=1, auth=1)
    r.queries = m.queries
    if q.name.name.decode().lower() != name:
        r.rCode = dns.ENAME
    elif q.type == dns.A:
        r.answers = [dns.RRHeader(name=q.name.name, type=dns.A, ttl=60,
                                  payload=dns.Record_A(answer, 60), auth=True)]
    s.sendto(r.toStr(), peer)
"""


class FakeUpstreamDNS:
    """A DNS server in a namespace of its own, reached from the host over a veth pair.

    It answers one name (an A record), NXDOMAIN for every other, and prints each question to
    its stdout (L{queries}). Addresses are a /30 out of 10.2xx; L{close} removes the
    namespace, the veth pair and the process.
    """

    def __init__(self, name: str, answer: str) -> None:
        tag = os.urandom(3).hex()
        self.netns = f"pyd-t-dns{tag}"
        self.host_if = f"pydtu{tag}"
        base = (
            f"10.{random.randint(200, 249)}.{random.randint(0, 255)}.{random.randrange(0, 256, 4)}"
        )
        prefix = base.rsplit(".", 1)[0]
        last = int(base.rsplit(".", 1)[1])
        self.host_ip = f"{prefix}.{last + 1}"
        self.address = f"{prefix}.{last + 2}"
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        try:
            self._up(name, answer)
        except BaseException:
            self.close()
            raise

    def _up(self, name: str, answer: str) -> None:
        def ip(*args: str) -> None:
            subprocess.run(["ip", *args], check=True, capture_output=True)

        ip("netns", "add", self.netns)
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("-n", self.netns, "addr", "add", f"{self.address}/30", "dev", "eth0")
        ip("-n", self.netns, "link", "set", "eth0", "up")
        ip("-n", self.netns, "link", "set", "lo", "up")
        self.proc = subprocess.Popen(
            [
                *("ip", "netns", "exec", self.netns, sys.executable, "-c", _FAKE_DNS),
                *(self.address, name.lower(), answer),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", line
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line.strip())

    def queries(self) -> list[str]:
        """The questions received so far, as C{"query NAME TYPE"}."""
        return list(self._lines)

    def close(self) -> None:
        """Stop the server; delete the veth pair and the namespace."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)
