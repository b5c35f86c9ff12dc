"""Benchmark: published-port throughput and connection rate, and network setup latency.

Run as `.venv/bin/python -m bench.network` (root). Uses pyd's real NetworkService on the real
kernel (tests/helpers/netsvc.py): a stand-in container namespace on a test bridge runs a small
server, reached from the host

* through the published port on 127.0.0.1 (kernel DNAT, pyd's nft table), and
* directly on the container's bridge address (no NAT) as the baseline.

It reports TCP throughput (one connection streaming N MB) and connection rate (sequential
connect/request/response/close), then the median time of NetworkService.setup + teardown for a
container on the default bridge, on a user network, and with `--network none` — the network part
of container start latency. When the containers API and a test image are available, it also
times `docker run --rm` with and without a network through a real pyd. There is no dockerd on
this machine to compare with. Traffic stays on loopback and on the test's own bridge.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

from pyd.engine.networks import CreateRequest
from tests.helpers.netsvc import NetHarness, free_port, result

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
    for _ in range(100):
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {host}:{port} did not start")


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


def _conn_rate(host: str, port: int, n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"hi")
            assert s.recv(2) == b"ok"
        times.append(time.perf_counter() - t0)
    return n / sum(times), statistics.median(times) * 1e6


def _ports(h: NetHarness, mb: int, conns: int) -> None:
    cid = h.add_container("srv")
    ps, pc = free_port(), free_port()
    s = result(
        h.service.setup(
            cid,
            "srv",
            "srv",
            "default",
            {},
            {
                "PortBindings": {
                    "5001/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(ps)}],
                    "5002/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(pc)}],
                }
            },
            [],
        )
    )
    assert s.netns_path
    size = mb * 1024 * 1024
    h.spawn(s.netns_path, sys.executable, "-c", SERVER, "stream", "5001", str(size))
    h.spawn(s.netns_path, sys.executable, "-c", SERVER, "rr", "5002", "0")
    ip = s.endpoints[0].ipv4
    _wait(ip, 5001)
    _wait(ip, 5002)
    print(f"TCP through a published port ({mb} MB stream, {conns} sequential connections):")
    print(f"{'path':<34}{'MB/s':>10}{'conn/s':>10}{'median µs':>12}")
    for label, host, p_s, p_c in (
        ("127.0.0.1:port (nft DNAT)", "127.0.0.1", ps, pc),
        (f"{ip} direct (no NAT)", ip, 5001, 5002),
    ):
        tput = statistics.median(_throughput(host, p_s, size) for _ in range(3))
        rate, med = _conn_rate(host, p_c, conns)
        print(f"{label:<34}{tput:>10.0f}{rate:>10.0f}{med:>12.0f}")
    result(h.service.teardown(cid))


def _setup_latency(h: NetHarness, rounds: int) -> None:
    result(h.service.create(CreateRequest(name="benchnet")))
    print(f"\nNetworkService.setup + teardown (median of {rounds}, ms):")
    print(f"{'mode':<24}{'setup':>10}{'teardown':>10}")
    for mode in ("none", "default", "benchnet"):
        su, td = [], []
        for i in range(rounds):
            cid = h.add_container(f"lat-{mode}-{i}")
            t0 = time.perf_counter()
            result(h.service.setup(cid, "c", "c", mode, {}, {}, []))
            t1 = time.perf_counter()
            result(h.service.release(cid))
            t2 = time.perf_counter()
            su.append(t1 - t0)
            td.append(t2 - t1)
        print(f"{mode:<24}{statistics.median(su) * 1e3:>10.1f}{statistics.median(td) * 1e3:>10.1f}")


def _docker_run(rounds: int) -> None:
    from tests.helpers.daemon import PydDaemon
    from tests.helpers.images import DEFAULT_TAG, load_busybox

    d = PydDaemon()
    try:
        d.start()
        load_busybox(d)
        d.docker("network", "create", "benchnet")
        print(f"\n`docker run --rm {DEFAULT_TAG} true` through pyd (median of {rounds}, ms):")
        for net in ("none", "bridge", "benchnet", "host"):
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                d.docker("run", "--rm", "--network", net, DEFAULT_TAG, "true")
                times.append(time.perf_counter() - t0)
            print(f"  --network {net:<10}{statistics.median(times) * 1e3:>8.0f}")
    finally:
        d.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.network needs root")
    h = NetHarness()
    try:
        result(h.service.start())
        _ports(h, args.mb, args.conns)
        _setup_latency(h, args.rounds)
    finally:
        h.close()
        subprocess.run(["true"], check=False)
    _docker_run(args.rounds)


if __name__ == "__main__":
    main()
