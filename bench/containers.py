"""Container lifecycle benchmark (issue 4): run latency, create+rm, ps with 200 containers,
20 concurrent runs, logs throughput.

Run as C{.venv/bin/python -m bench.containers}. Starts its own pyd on a temporary socket and data
root, loads the offline busybox image and prints one table. dockerd is not installed on these
machines, so there is no comparison column. Kept short (2 shared cores): about a minute.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import docker

from tests.helpers.daemon import DOCKER, PydDaemon, unix_request
from tests.helpers.images import DEFAULT_TAG, load_busybox

IMG = DEFAULT_TAG


def _env(d: PydDaemon) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": d.host, "DOCKER_CONFIG": str(d.base / "docker-config")}


def _cli(d: PydDaemon, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([DOCKER, *args], env=_env(d), check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000


def run_latency(d: PydDaemon, n: int = 10) -> float:
    """Median ms of `docker run --rm IMG true` (create, attach, wait, start, exit, remove)."""
    return statistics.median(_cli(d, "run", "--rm", IMG, "true") for _ in range(n))


def create_rm(d: PydDaemon, n: int = 10) -> tuple[float, float]:
    """Median ms of `docker create` and of `docker rm`."""
    creates, rms = [], []
    for i in range(n):
        creates.append(_cli(d, "create", "--name", f"pyd-bench-c{i}", IMG, "true"))
        rms.append(_cli(d, "rm", f"pyd-bench-c{i}"))
    return statistics.median(creates), statistics.median(rms)


def ps_many(d: PydDaemon, count: int = 200, n: int = 5) -> tuple[float, float]:
    """Median ms of `docker ps -a` and of the raw list call with C{count} containers."""
    client = docker.DockerClient(base_url=d.host)
    try:
        for i in range(count):
            client.containers.create(IMG, ["true"], name=f"pyd-bench-ps{i}")
    finally:
        client.close()
    cli = statistics.median(_cli(d, "ps", "-a") for _ in range(n))
    api = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, _, body = unix_request(d.sock, "GET", "/v1.50/containers/json?all=1")
        api.append((time.perf_counter() - t0) * 1000)
        assert status == 200 and body.count(b'"Id"') >= count
    return cli, statistics.median(api)


def concurrent_runs(d: PydDaemon, k: int = 20) -> float:
    """Wall-clock seconds for C{k} parallel `docker run --rm IMG true`."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=k) as pool:
        list(pool.map(lambda _: _cli(d, "run", "--rm", IMG, "true"), range(k)))
    return time.perf_counter() - t0


def logs_throughput(d: PydDaemon, lines: int = 300_000) -> tuple[float, float]:
    """MiB/s of `docker logs` (non-follow) over a log of C{lines} short lines, and its size."""
    name = "pyd-bench-logs"
    d.docker("run", "--name", name, IMG, "seq", "1", str(lines), timeout=300)
    t0 = time.perf_counter()
    p = subprocess.run([DOCKER, "logs", name], env=_env(d), stdout=subprocess.PIPE, check=True)
    elapsed = time.perf_counter() - t0
    mib = len(p.stdout) / (1024 * 1024)
    assert p.stdout.count(b"\n") == lines
    return mib / elapsed, mib


def main(argv: list[str] | None = None) -> None:
    """Run every row and print the table."""
    d = PydDaemon().start()
    try:
        load_busybox(d)
        _cli(d, "run", "--rm", IMG, "true")  # warm up
        rows = [("docker run --rm IMG true (median of 10)", f"{run_latency(d):.0f} ms")]
        c, r = create_rm(d)
        rows.append(("docker create (median of 10)", f"{c:.0f} ms"))
        rows.append(("docker rm (median of 10)", f"{r:.0f} ms"))
        wall = concurrent_runs(d)
        rows.append(("20 concurrent docker run --rm IMG true (wall)", f"{wall:.2f} s"))
        cli, api = ps_many(d)
        rows.append(("docker ps -a with 200 containers (median of 5)", f"{cli:.0f} ms"))
        rows.append(("GET /containers/json?all=1, 200 containers", f"{api:.1f} ms"))
        tput, mib = logs_throughput(d)
        rows.append((f"docker logs, {mib:.1f} MiB of short lines", f"{tput:.1f} MiB/s"))
        width = max(len(x[0]) for x in rows)
        print(f"{'pyd containers benchmark':<{width}}  result")
        for label, value in rows:
            print(f"{label:<{width}}  {value}")
        print("(dockerd is not installed on this machine: no comparison column)")
    finally:
        d.cleanup()


if __name__ == "__main__":
    main()
