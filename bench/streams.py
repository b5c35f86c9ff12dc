"""Streams benchmark: attach and logs throughput, exec latency, docker cp throughput.

Run as C{.venv/bin/python -m bench.streams} (root). Starts pyd (and dockerd when installed, see
L{bench.common.daemons}) on temporary sockets and data roots, loads the offline busybox image into
each, runs the same commands against each and prints one table with the pyd/dockerd ratio. Kept
short (2 shared cores): about a minute.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import docker

from bench.common import Daemon, Row, daemons, table
from tests.helpers.daemon import DOCKER
from tests.helpers.images import DEFAULT_TAG

IMG = DEFAULT_TAG
MIB = 1024 * 1024


def attach_throughput(d: Daemon, mib: int = 64) -> float:
    """MiB/s of a container's stdout through `docker run` (hijacked attach, stdcopy frames)."""
    t0 = time.perf_counter()
    p = subprocess.run(
        [DOCKER, "run", "--rm", IMG, "dd", "if=/dev/zero", "bs=1048576", f"count={mib}"],
        env=d.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    elapsed = time.perf_counter() - t0
    assert len(p.stdout) == mib * MIB, len(p.stdout)
    return mib / elapsed


def logs_throughput(d: Daemon, mib: int = 32) -> float:
    """MiB/s of `docker logs` over a finished container's 32 MiB of (line-broken) output."""
    name = "pyd-bench-logs"
    d.docker(
        "run", "--name", name, IMG, "sh", "-c",
        f"dd if=/dev/zero bs=1048576 count={mib} 2>/dev/null | tr '\\0' 'x' | fold -w 1023",
    )  # fmt: skip
    try:
        t0 = time.perf_counter()
        p = subprocess.run([DOCKER, "logs", name], env=d.env, stdout=subprocess.PIPE, check=True)
        elapsed = time.perf_counter() - t0
        assert len(p.stdout) >= mib * MIB
        return len(p.stdout) / MIB / elapsed
    finally:
        d.docker("rm", "-f", name, check=False)


def exec_latency(d: Daemon, name: str, n: int = 15) -> tuple[float, float]:
    """Median ms of `docker exec c true` (CLI) and of docker-py exec_run (API only)."""
    cli = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([DOCKER, "exec", name, "true"], env=d.env, check=True)
        cli.append((time.perf_counter() - t0) * 1000)
    client = docker.DockerClient(base_url=d.host)
    api = []
    try:
        c = client.containers.get(name)
        for _ in range(n):
            t0 = time.perf_counter()
            assert c.exec_run(["true"]).exit_code == 0
            api.append((time.perf_counter() - t0) * 1000)
    finally:
        client.close()
    return statistics.median(cli), statistics.median(api)


def cp_throughput(d: Daemon, name: str, mib: int = 32) -> tuple[float, float]:
    """MiB/s of `docker cp` into and out of a running container."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "blob"
        src.write_bytes(os.urandom(mib * MIB))
        t0 = time.perf_counter()
        subprocess.run([DOCKER, "cp", str(src), f"{name}:/tmp/"], env=d.env, check=True)
        t_in = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(
            [DOCKER, "cp", f"{name}:/tmp/blob", str(Path(tmp) / "back")], env=d.env, check=True
        )
        t_out = time.perf_counter() - t0
        assert (Path(tmp) / "back").stat().st_size == mib * MIB
    return mib / t_in, mib / t_out


def main(argv: list[str] | None = None) -> int:
    """Run every row against every daemon and print the table."""
    name = "pyd-bench-streams"
    rows = [
        Row("attach: docker run stdout, 64 MiB", "MiB/s", {}, True),
        Row("logs: docker logs of 32 MiB (1 KiB lines)", "MiB/s", {}, True),
        Row("exec: docker exec c true", "ms", {}),
        Row("exec: docker-py exec_run true", "ms", {}),
        Row("cp: 32 MiB file into a container", "MiB/s", {}, True),
        Row("cp: 32 MiB file out of a container", "MiB/s", {}, True),
    ]
    with daemons(busybox=True) as ds:
        for d in ds:
            d.docker("run", "-d", "--name", name, IMG, "sleep", "600")
        for d in ds:
            rows[0].values[d.name] = statistics.median(attach_throughput(d) for _ in range(3))
        for d in ds:
            rows[1].values[d.name] = logs_throughput(d)
        for d in ds:
            rows[2].values[d.name], rows[3].values[d.name] = exec_latency(d, name)
        cps: dict[str, list[tuple[float, float]]] = {d.name: [] for d in ds}
        for _ in range(5):  # one copy is a few hundred ms: alternate daemons, take medians
            for d in ds:
                cps[d.name].append(cp_throughput(d, name))
        for d in ds:
            rows[4].values[d.name] = statistics.median(x for x, _ in cps[d.name])
            rows[5].values[d.name] = statistics.median(y for _, y in cps[d.name])
        names = [d.name for d in ds]
    print(table(rows, names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
