"""Benchmark: published-port throughput and connection rate, and container start latency with
and without a network, through pyd and (when installed) dockerd.

Run as `.venv/bin/python -m bench.network` (root). Per daemon, a busybox container publishes two
ports on 127.0.0.1; a small Python server runs in the container's network namespace (`nsenter
-n`, from the host). From the host the bench measures

* TCP throughput (one connection streaming N MB) and connection rate (sequential
  connect/request/response/close) through the published port on 127.0.0.1, and the same
  directly on the container's bridge address (no NAT, no proxy) as the baseline; both daemons'
  servers run at once and the measurements take turns (medians of 3, the order swapped each
  time);
* `docker run --rm IMG true` with `--network none`, the default bridge, a user network, and
  the default bridge with a published port.

dockerd runs on a bridge this bench creates (own name, own 10.2xx.y.0/24, user networks from an
own 10.2xx.0.0/16 pool) with `--iptables=false --ip-masq=false --ip-forward=false`: it touches no
firewall rule and no sysctl, and publishes ports with its userland proxy (docker-proxy), which is
also what a default dockerd uses for connections to 127.0.0.1 from the host itself. pyd publishes
with an nft DNAT rule. The bench records iptables-save, ip_forward and the FORWARD policy before,
checks them afterwards (restoring ip_forward if it changed), and deletes the bridges it made.
Traffic stays on loopback and on the benchmark's own bridges.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

from bench.common import Daemon, Row, load_busybox, start_dockerd, start_pyd, table
from tests.helpers.images import DEFAULT_TAG

IMG = DEFAULT_TAG

SERVER = r"""
import socket, sys
mode, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(128)
chunk = b"x" * 65536
while True:
    c, _ = s.accept()
    try:
        if c.recv(64) == b"go" and mode == "stream":
            left = size
            while left > 0:
                n = c.send(chunk[: min(left, len(chunk))]); left -= n
        else:
            c.sendall(b"ok")
    except OSError:
        pass
    c.close()
"""


def _wait(host: str, port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {host}:{port} did not answer")


def _throughput(host: str, port: int, size: int) -> float:
    t0 = time.perf_counter()
    got = 0
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"go")
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            got += len(b)
    dt = time.perf_counter() - t0
    assert got == size, (got, size)
    return size / dt / 1e6


def _conn_rate(host: str, port: int, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"hi")
            assert s.recv(2) == b"ok"
    return n / (time.perf_counter() - t0)


def _free_net(prefix: int) -> ipaddress.IPv4Network:
    """A random 10.2xx.../prefix that no host route overlaps."""
    out = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout
    routes = []
    for line in out.splitlines():
        try:
            routes.append(ipaddress.ip_network(line.split()[0], strict=False))
        except (ValueError, IndexError):
            continue
    for _ in range(200):
        net = ipaddress.ip_network(
            f"10.{random.randint(200, 249)}.{random.randint(0, 255)}.0/{prefix}", strict=False
        )
        if not any(net.overlaps(r) for r in routes):
            return net
    raise RuntimeError("no free 10.2xx subnet")


class HostState:
    """What dockerd could touch on the host: recorded before, checked (and put back) after."""

    def __init__(self) -> None:
        self.iptables = self._iptables()
        self.ip_forward = self._sysctl()
        self.forward_policy = self._policy()

    @staticmethod
    def _iptables() -> str:
        out = []
        for tool in ("iptables-save", "ip6tables-save"):
            r = subprocess.run([tool], capture_output=True, text=True, check=False)
            out += [x for x in r.stdout.splitlines() if not x.startswith("#")]
        return "\n".join(out)

    @staticmethod
    def _sysctl() -> str:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            return f.read().strip()

    @staticmethod
    def _policy() -> str:
        r = subprocess.run(
            ["iptables", "-S", "FORWARD"], check=False, capture_output=True, text=True
        )
        return r.stdout.splitlines()[0] if r.stdout else ""

    def check(self) -> list[str]:
        """Put ip_forward back if it changed; return what differs from before."""
        problems = []
        if self._sysctl() != self.ip_forward:
            problems.append(f"ip_forward changed to {self._sysctl()}; restored {self.ip_forward}")
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write(self.ip_forward)
        if self._policy() != self.forward_policy:
            problems.append(f"FORWARD policy now {self._policy()!r}, was {self.forward_policy!r}")
        if self._iptables() != self.iptables:
            problems.append("iptables rules differ from before the bench (other users of the box?)")
        return problems


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def start_dockerd_bridged() -> tuple[Daemon | None, list[str]]:
    """dockerd on a bridge of its own (see the module docstring); the bridges to delete."""
    bridge = "pydbd" + os.urandom(3).hex()
    net = _free_net(24)
    pool = _free_net(16)
    _ip("link", "add", bridge, "type", "bridge")
    try:
        _ip("addr", "add", f"{net.network_address + 1}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        d = start_dockerd(
            [
                "--bridge", bridge,
                "--default-address-pool", f"base={pool},size=24",
                "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                "--ip-forward=false", "--userland-proxy=true",
                "--userland-proxy-path", "/usr/sbin/docker-proxy",
            ]
        )  # fmt: skip
    except BaseException:
        subprocess.run(["ip", "link", "del", bridge], check=False)
        raise
    return d, [bridge]


@contextlib.contextmanager
def _server(d: Daemon, mb: int, ps: int, pc: int) -> Iterator[list[tuple[str, str, int, int]]]:
    """A container of C{d} serving a C{mb} MB stream and a connect/close echo, published on
    127.0.0.1 ports C{ps} and C{pc}; yields its (row key, host, stream port, connect port) for
    the published ports and for the container's own address."""
    name = "pyd-bench-srv"
    d.docker(
        "run", "-d", "--name", name,
        "-p", f"127.0.0.1:{ps}:5001", "-p", f"127.0.0.1:{pc}:5002",
        IMG, "sleep", "600",
    )  # fmt: skip
    procs = []
    try:
        fmt = "{{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        pid, ip = d.docker("inspect", "-f", fmt, name).stdout.decode().split()
        size = mb * 1024 * 1024
        for mode, port, sz in (("stream", "5001", size), ("rr", "5002", 0)):
            procs.append(
                subprocess.Popen(
                    ["nsenter", "-t", pid, "-n", sys.executable, "-c", SERVER, mode, port, str(sz)]
                )
            )
        _wait(ip, 5001)
        _wait(ip, 5002)
        _wait("127.0.0.1", ps)
        yield [("pub", "127.0.0.1", ps, pc), ("direct", ip, 5001, 5002)]
    finally:
        for p in procs:
            p.kill()
            p.wait()
        d.docker("rm", "-f", name, check=False)


def _distinct_ports(n: int) -> list[int]:
    """C{n} different free ports of 127.0.0.1 (each held until all are chosen)."""
    held = []
    try:
        for _ in range(n):
            sk = socket.socket()
            sk.bind(("127.0.0.1", 0))
            held.append(sk)
        return [sk.getsockname()[1] for sk in held]
    finally:
        for sk in held:
            sk.close()


def _server_rows(
    ds: list[Daemon], mb: int, conns: int, reps: int = 3
) -> dict[str, dict[str, float]]:
    """Each TCP row for each daemon: medians of C{reps} measurements, the daemons taking turns
    (first one, then the other first), so a change of the machine's load hits both."""
    size = mb * 1024 * 1024
    got: dict[str, dict[str, list[float]]] = {d.name: {} for d in ds}
    ports = _distinct_ports(2 * len(ds))  # both daemons publish at once: never one port twice
    with contextlib.ExitStack() as stack:
        targets = {
            d.name: stack.enter_context(_server(d, mb, ports[2 * i], ports[2 * i + 1]))
            for i, d in enumerate(ds)
        }
        for rep in range(reps):
            for d in ds if rep % 2 == 0 else ds[::-1]:
                for key, host, p_s, p_c in targets[d.name]:
                    got[d.name].setdefault(key + "_tput", []).append(_throughput(host, p_s, size))
                    got[d.name].setdefault(key + "_rate", []).append(_conn_rate(host, p_c, conns))
    return {n: {k: statistics.median(v) for k, v in rows.items()} for n, rows in got.items()}


def main(argv: list[str] | None = None) -> int:
    """Run and print the table."""
    ap = argparse.ArgumentParser(prog="python -m bench.network")
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--runs", type=int, default=8)
    args = ap.parse_args(argv or [])
    if os.geteuid() != 0:
        sys.exit("bench.network needs root")
    rows = {
        "pub_tput": Row(f"TCP stream via 127.0.0.1 published port ({args.mb} MB)", "MB/s", {}, True),
        "direct_tput": Row("TCP stream to the container address (no NAT)", "MB/s", {}, True),
        "pub_rate": Row("connections/s via 127.0.0.1 published port", "conn/s", {}, True),
        "direct_rate": Row("connections/s to the container address", "conn/s", {}, True),
        "none": Row("docker run --rm --network none IMG true", "ms", {}),
        "bridge": Row("docker run --rm IMG true (default bridge)", "ms", {}),
        "user": Row("docker run --rm --network USERNET IMG true", "ms", {}),
        "publish": Row("docker run --rm -p 127.0.0.1::80 IMG true", "ms", {}),
    }  # fmt: skip
    host = HostState()
    ds: list[Daemon] = []
    bridges: list[str] = []
    netids: dict[str, str] = {}
    try:
        ds.append(start_pyd())
        dd, bridges = start_dockerd_bridged()
        if dd is not None:
            ds.append(dd)
        for d in ds:
            load_busybox(d)
            netids[d.name] = d.docker("network", "create", "benchnet").stdout.decode().strip()
            d.docker("run", "--rm", IMG, "true")  # warm up
        for n, measured in _server_rows(ds, args.mb, args.conns).items():
            for k, v in measured.items():
                rows[k].values[n] = v
        runs: dict[str, dict[str, list[float]]] = {
            k: {} for k in ("none", "bridge", "user", "publish")
        }
        for _ in range(args.runs):
            for d in ds:
                for k, extra in (
                    ("none", ["--network", "none"]),
                    ("bridge", []),
                    ("user", ["--network", "benchnet"]),
                    ("publish", ["-p", "127.0.0.1::80"]),
                ):
                    runs[k].setdefault(d.name, []).append(
                        d.cli_ms("run", "--rm", *extra, IMG, "true")
                    )
        for k, per in runs.items():
            for n, v in per.items():
                rows[k].values[n] = statistics.median(v)
        names = [d.name for d in ds]
    finally:
        for d in ds:
            if d.name in netids:
                d.docker("network", "rm", "benchnet", check=False)
            d.stop()
        if "dockerd" in netids:
            bridges.append("br-" + netids["dockerd"][:12])
        for b in bridges:
            subprocess.run(["ip", "link", "del", b], check=False, capture_output=True)
        for problem in host.check():
            print("WARNING:", problem)
    print(table(list(rows.values()), names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
