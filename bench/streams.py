"""Streams benchmark: attach throughput, exec latency, docker cp throughput (issue 4).

Run as C{.venv/bin/python -m bench.streams}. Starts its own pyd on a temporary socket and data
root, loads the offline busybox image and prints one table. Kept short (2 shared cores): about
half a minute.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import docker

from tests.helpers.daemon import DOCKER, PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox

IMG = DEFAULT_TAG
MIB = 1024 * 1024


def _env(d: PydDaemon) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": d.host, "DOCKER_CONFIG": str(d.base / "docker-config")}


def attach_throughput(d: PydDaemon, mib: int = 64) -> float:
    """MiB/s of a container's stdout through `docker run` (hijacked attach, stdcopy frames)."""
    t0 = time.perf_counter()
    p = subprocess.run(
        [DOCKER, "run", "--rm", IMG, "dd", "if=/dev/zero", "bs=1048576", f"count={mib}"],
        env=_env(d),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    elapsed = time.perf_counter() - t0
    assert len(p.stdout) == mib * MIB, len(p.stdout)
    return mib / elapsed


def logs_throughput(d: PydDaemon, mib: int = 32) -> float:
    """MiB/s of `docker logs` over a finished container's 32 MiB of (line-broken) output."""
    name = "pyd-bench-logs"
    d.docker(
        "run", "--name", name, IMG, "sh", "-c",
        f"dd if=/dev/zero bs=1048576 count={mib} 2>/dev/null | tr '\\0' 'x' | fold -w 1023",
    )  # fmt: skip
    try:
        t0 = time.perf_counter()
        p = subprocess.run([DOCKER, "logs", name], env=_env(d), stdout=subprocess.PIPE, check=True)
        elapsed = time.perf_counter() - t0
        assert len(p.stdout) >= mib * MIB
        return len(p.stdout) / MIB / elapsed
    finally:
        d.docker("rm", "-f", name, check=False)


def exec_latency(d: PydDaemon, name: str, n: int = 15) -> tuple[float, float]:
    """Median ms of `docker exec c true` (CLI) and of docker-py exec_run (API only)."""
    cli = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([DOCKER, "exec", name, "true"], env=_env(d), check=True)
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


def cp_throughput(d: PydDaemon, name: str, mib: int = 32) -> tuple[float, float]:
    """MiB/s of `docker cp` into and out of a running container."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "blob"
        src.write_bytes(os.urandom(mib * MIB))
        t0 = time.perf_counter()
        subprocess.run([DOCKER, "cp", str(src), f"{name}:/tmp/"], env=_env(d), check=True)
        t_in = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(
            [DOCKER, "cp", f"{name}:/tmp/blob", str(Path(tmp) / "back")], env=_env(d), check=True
        )
        t_out = time.perf_counter() - t0
        assert (Path(tmp) / "back").stat().st_size == mib * MIB
    return mib / t_in, mib / t_out


def main() -> None:
    """Run every row and print the table."""
    d = PydDaemon().start()
    try:
        load_busybox(d)
        name = "pyd-bench-streams"
        d.docker("run", "-d", "--name", name, IMG, "sleep", "600")
        rows = []
        rows.append(("attach: docker run stdout, 64 MiB", f"{attach_throughput(d):.1f} MiB/s"))
        rows.append(("logs: docker logs of 32 MiB", f"{logs_throughput(d):.1f} MiB/s"))
        cli, api = exec_latency(d, name)
        rows.append(("exec: docker exec c true (median)", f"{cli:.1f} ms"))
        rows.append(("exec: docker-py exec_run true (median)", f"{api:.1f} ms"))
        cp_in, cp_out = cp_throughput(d, name)
        rows.append(("cp: 32 MiB file into a container", f"{cp_in:.1f} MiB/s"))
        rows.append(("cp: 32 MiB file out of a container", f"{cp_out:.1f} MiB/s"))
        width = max(len(r[0]) for r in rows)
        print(f"{'pyd streams benchmark':<{width}}  result")
        for label, value in rows:
            print(f"{label:<{width}}  {value}")
        print("(dockerd is not installed on this machine: no comparison column)")
    finally:
        d.cleanup()


if __name__ == "__main__":
    main()
