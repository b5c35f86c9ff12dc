"""Container lifecycle benchmark: run latency, create/start/stop/rm, concurrent runs, ps, logs.

Run as C{.venv/bin/python -m bench.containers} (root). Starts pyd (and dockerd when installed,
see L{bench.common.daemons}) on temporary sockets and data roots, loads the offline busybox image
into each and times the same docker CLI commands against each, row by row:

  - `docker run --rm IMG true` (create, attach, start, wait, exit, remove);
  - `docker run -d IMG <long-running>`, then `docker rm -f`;
  - `docker create`, `docker start`, `docker stop` (the process exits on SIGTERM), `docker rm`;
  - K concurrent `docker run --rm IMG true` (wall clock);
  - one `docker rm` call removing B created containers (B=200: the issue's bulk row);
  - `docker ps -a` and the raw list call with N containers;
  - `docker logs` throughput over a finished container's `seq 1 200000`.
  - a container logging through json-file rotation (max-size=100k, max-file=3).

Prints one table with pyd, dockerd and the ratio. About a minute on 2 shared cores.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import Daemon, Row, daemons, table
from tests.helpers.daemon import unix_request
from tests.helpers.images import DEFAULT_TAG

IMG = DEFAULT_TAG
# Exits at once on SIGTERM (a plain `sleep` as PID 1 ignores it, and stop would wait 10 s).
LONG = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]


def lifecycle(d: Daemon, i: int) -> tuple[float, float, float, float]:
    """Milliseconds of create, start, stop and rm of one long-running container."""
    name = f"pyd-bench-l{i}"
    c = d.cli_ms("create", "--name", name, IMG, *LONG)
    s = d.cli_ms("start", name)
    st = d.cli_ms("stop", name)
    r = d.cli_ms("rm", name)
    return c, s, st, r


def run_detached(d: Daemon, i: int) -> float:
    """Milliseconds of `docker run -d` of a long-running container (removed afterwards)."""
    name = f"pyd-bench-d{i}"
    ms = d.cli_ms("run", "-d", "--name", name, IMG, *LONG)
    d.docker("rm", "-f", name)
    return ms


def concurrent_runs(d: Daemon, k: int) -> float:
    """Wall-clock seconds for C{k} parallel `docker run --rm IMG true`."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=k) as pool:
        list(pool.map(lambda _: d.cli_ms("run", "--rm", IMG, "true"), range(k)))
    return time.perf_counter() - t0


def ps_many(d: Daemon, count: int, n: int = 5) -> tuple[float, float]:
    """Median ms of `docker ps -a` and of GET /containers/json?all=1 with C{count} containers."""
    ids = d.docker("ps", "-aq").stdout.split()
    for i in range(count - len(ids)):
        d.docker("create", "--name", f"pyd-bench-ps{i}", IMG, "true")
    cli = statistics.median(d.cli_ms("ps", "-a") for _ in range(n))
    api = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, _, body = unix_request(d.sock, "GET", "/v1.41/containers/json?all=1")
        api.append((time.perf_counter() - t0) * 1000)
        assert status == 200 and body.count(b'"Id"') >= count, status
    return cli, statistics.median(api)


def bulk_rm(d: Daemon, count: int, i: int) -> float:
    """Milliseconds of one `docker rm` naming C{count} created (never started) containers."""
    names = [f"pyd-bench-b{i}-{k}" for k in range(count)]
    for name in names:
        d.docker("create", "--name", name, IMG, "true", stdout=subprocess.DEVNULL)
    ms = d.cli_ms("rm", *names)
    left = d.docker("ps", "-aq", "--filter", f"name=pyd-bench-b{i}-").stdout.split()
    assert not left, f"{d.name}: {len(left)} containers left after the bulk rm"
    return ms


def logs_throughput(d: Daemon, lines: int) -> tuple[float, float]:
    """MiB/s of `docker logs` (non-follow) over C{lines} short lines, and the MiB read."""
    name = "pyd-bench-logs"
    if d.docker("inspect", name, check=False).returncode != 0:
        d.docker("run", "--name", name, IMG, "seq", "1", str(lines), stdout=subprocess.DEVNULL)
    times = []
    size = 0
    for _ in range(3):
        t0 = time.perf_counter()
        out = d.docker("logs", name).stdout
        times.append(time.perf_counter() - t0)
        assert out.count(b"\n") == lines, out.count(b"\n")
        size = len(out)
    mib = size / (1024 * 1024)
    return mib / statistics.median(times), mib


def rotated_run(d: Daemon, lines: int, i: int) -> float:
    """Wall ms of a container printing C{lines} lines through max-size=100k max-file=3 (about
    35 rotations for 500 000 lines); the newest line must be the last one logged."""
    name = f"pyd-bench-rot-{i}"
    t0 = time.perf_counter()
    d.docker(
        "run", "--name", name, "--log-opt", "max-size=100k", "--log-opt", "max-file=3",
        IMG, "seq", "1", str(lines), stdout=subprocess.DEVNULL,
    )  # fmt: skip
    ms = (time.perf_counter() - t0) * 1000
    last = d.docker("logs", "--tail", "1", name).stdout.strip()
    assert last == str(lines).encode(), last
    d.docker("rm", name, stdout=subprocess.DEVNULL)
    return ms


def main(argv: list[str] | None = None) -> int:
    """Run every row against every daemon and print the table."""
    ap = argparse.ArgumentParser(prog="python -m bench.containers")
    ap.add_argument("--runs", type=int, default=10, help="repetitions of each latency row")
    ap.add_argument("--concurrent", type=int, default=10)
    ap.add_argument("--ps", type=int, default=100, help="containers for the ps rows")
    ap.add_argument("--log-lines", type=int, default=200_000)
    ap.add_argument("--bulk", type=int, default=200, help="containers in the bulk rm row")
    ap.add_argument("--bulk-rounds", type=int, default=3)
    args = ap.parse_args(argv or [])
    n = args.runs
    rows = {
        k: Row(label, unit, {}, hib)
        for k, label, unit, hib in (
            ("run", "docker run --rm IMG true", "ms", False),
            ("rund", "docker run -d IMG (long-running)", "ms", False),
            ("create", "docker create", "ms", False),
            ("start", "docker start", "ms", False),
            ("stop", "docker stop (exits on SIGTERM)", "ms", False),
            ("rm", "docker rm (stopped)", "ms", False),
            ("bulk", f"docker rm of {args.bulk} created containers (one call)", "ms", False),
            ("conc", f"{args.concurrent} concurrent docker run --rm (wall)", "s", False),
            ("ps", f"docker ps -a, {args.ps} containers", "ms", False),
            ("list", f"GET /containers/json?all=1, {args.ps} containers", "ms", False),
            ("logs", f"docker logs, {args.log_lines} short lines", "MiB/s", True),
            ("rot", "docker run seq 1 500000, max-size=100k max-file=3 (wall)", "ms", False),
        )
    }
    with daemons(busybox=True) as ds:
        for d in ds:
            d.docker("run", "--rm", IMG, "true")  # warm up
        run: dict[str, list[float]] = {d.name: [] for d in ds}
        rund: dict[str, list[float]] = {d.name: [] for d in ds}
        life: dict[str, list[tuple[float, float, float, float]]] = {d.name: [] for d in ds}
        for i in range(n):  # alternate daemons so load spikes hit both
            for d in ds:
                run[d.name].append(d.cli_ms("run", "--rm", IMG, "true"))
                rund[d.name].append(run_detached(d, i))
                life[d.name].append(lifecycle(d, i))
        for d in ds:
            rows["run"].values[d.name] = statistics.median(run[d.name])
            rows["rund"].values[d.name] = statistics.median(rund[d.name])
            for j, k in enumerate(("create", "start", "stop", "rm")):
                rows[k].values[d.name] = statistics.median(x[j] for x in life[d.name])
        bulk: dict[str, list[float]] = {d.name: [] for d in ds}
        for i in range(args.bulk_rounds):
            for d in ds:
                bulk[d.name].append(bulk_rm(d, args.bulk, i))
        for d in ds:
            rows["bulk"].values[d.name] = statistics.median(bulk[d.name])
        for d in ds:
            rows["conc"].values[d.name] = concurrent_runs(d, args.concurrent)
        for d in ds:
            rows["ps"].values[d.name], rows["list"].values[d.name] = ps_many(d, args.ps)
        for d in ds:
            d.docker("container", "prune", "-f")
            tput, _ = logs_throughput(d, args.log_lines)
            rows["logs"].values[d.name] = tput
        for d in ds:
            rows["rot"].values[d.name] = statistics.median(
                rotated_run(d, 500_000, i) for i in range(3)
            )
        names = [d.name for d in ds]
    print(table(list(rows.values()), names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
