"""Memory benchmark: RSS fresh, RSS after a standard workload, and the peak RSS growth of the
daemon process while it streams a large payload (docker cp in and out, logs, save, load).

Run as C{.venv/bin/python -m bench.memory [--mib N]} (root). RSS is read from /proc once the
daemon idled for two seconds. "Fresh" is right after start (before the busybox image is
loaded); the dockerd figures are of dockerd plus its children (containerd), as a user pays
both. The peak growth rows reset the process's peak RSS (``/proc/PID/clear_refs``: 5), run one
command and read ``VmHWM``: how much more than at rest the daemon process held at its worst
(for dockerd its own process; containerd does no part of these). A daemon that streams with
bounded buffers stays at a few MB whatever the payload size; one that buffers grows with it.

The standard workload (C{workload}): 200 containers created (4 CLI calls at a time) and removed
in one `docker rm`, a 50 MiB log (1 KiB lines) written and read back, a `docker build --no-cache` of a 10 MiB
context, 20 concurrent `docker run --rm`, then a ~52 MB image pushed to a loopback registry
(plain HTTP), removed and pulled back (L{push_pull}; the push and pull rates are in
L{bench.registry}).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import Daemon, Row, daemons, load_busybox, table, tree_rss_mb
from tests.helpers.images import DEFAULT_TAG, busybox_image_tar
from tests.helpers.registry import Registry

IMG = DEFAULT_TAG
MIB = 1024 * 1024


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _settled_rss_mb(d: Daemon, tree: bool) -> float:
    time.sleep(2)
    return tree_rss_mb(d.pid) if tree else _status_kb(d.pid, "VmRSS") / 1024


def peak_growth_mb(d: Daemon, run: object) -> float:
    """MB the daemon process's RSS rose above its level at the start of C{run()} at its peak."""
    assert callable(run)
    time.sleep(1)
    with open(f"/proc/{d.pid}/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = _status_kb(d.pid, "VmRSS")
    run()
    return max(0, _status_kb(d.pid, "VmHWM") - before) / 1024


def _log_lines(mib: int) -> str:
    """A shell command printing C{mib} MiB of 1 KiB lines (short lines would time the per-line
    cost of `docker logs`, which bench.containers does, not its memory)."""
    return f"dd if=/dev/zero bs=1048576 count={mib} 2>/dev/null | tr '\\0' x | fold -w 1023"


def push_pull(d: Daemon, image_tar: str) -> None:
    """The workload's push and pull: C{image_tar} (~52 MB) loaded, pushed to a fresh loopback
    registry (plain HTTP; 127.0.0.0/8 is insecure by default for both daemons), removed and
    pulled back."""
    d.docker("load", "-q", "-i", image_tar, stdout=subprocess.DEVNULL)
    registry = Registry()
    registry.start()
    try:
        name = f"{registry.host}/pyd-bench-mem/{d.name}:1"
        d.docker("tag", "bench/mem-src:1", name)
        d.docker("push", name, stdout=subprocess.DEVNULL)
        d.docker("rmi", name, "bench/mem-src:1", stdout=subprocess.DEVNULL)
        d.docker("pull", name, stdout=subprocess.DEVNULL)
        d.docker("rmi", name, stdout=subprocess.DEVNULL)
    finally:
        registry.stop()


def workload(d: Daemon, ctx: str) -> None:
    """The standard workload (module docstring)."""
    with ThreadPoolExecutor(4) as ex:
        ids = list(
            ex.map(lambda _: d.docker("create", IMG, "true").stdout.decode().strip(), range(200))
        )
    d.docker("rm", *ids)
    d.docker("run", "--name", "pyd-bench-mem-log", IMG, "sh", "-c", _log_lines(50))
    d.docker("logs", "pyd-bench-mem-log", stdout=subprocess.DEVNULL)
    d.docker("rm", "pyd-bench-mem-log")
    d.docker("build", "--no-cache", "-q", "-t", "pyd-bench-mem-build", ctx)
    with ThreadPoolExecutor(20) as ex:
        list(ex.map(lambda _: d.docker("run", "--rm", IMG, "true"), range(20)))


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    p = argparse.ArgumentParser(prog="python -m bench.memory")
    p.add_argument("--mib", type=int, default=128, help="payload of the streaming rows (MiB)")
    args = p.parse_args(argv)
    mib = args.mib
    rows = [
        Row("RSS fresh (daemon + children)", "MB", {}),
        Row("RSS after the standard workload (daemon + children)", "MB", {}),
        Row("RSS after / fresh", "ratio", {}),
        Row(f"peak RSS growth: docker cp {mib} MiB into a container", "MB", {}),
        Row(f"peak RSS growth: docker cp {mib} MiB out of a container", "MB", {}),
        Row(f"peak RSS growth: docker logs of {mib} MiB", "MB", {}),
        Row(f"peak RSS growth: docker save of a {mib} MiB image", "MB", {}),
        Row(f"peak RSS growth: docker load of a {mib} MiB image", "MB", {}),
    ]
    work = tempfile.mkdtemp(prefix="bench-mem-")
    try:
        ctx = os.path.join(work, "ctx")
        os.mkdir(ctx)
        with open(os.path.join(ctx, "blob"), "wb") as f:
            f.write(os.urandom(10 * MIB))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(f"FROM {IMG}\nCOPY blob /blob\nRUN wc -c /blob\nENV A=1\nRUN true\n")
        pushed = os.path.join(work, "pushed.tar")
        busybox_image_tar(pushed, "bench/mem-src:1", random_layers=[13 * MIB] * 4)
        big = os.path.join(work, "big")
        subprocess.run(["dd", "if=/dev/urandom", f"of={big}", "bs=1M", f"count={mib}"],
                       check=True, capture_output=True)  # fmt: skip
        bigctx = os.path.join(work, "bigctx")
        os.mkdir(bigctx)
        os.link(big, os.path.join(bigctx, "big"))
        with open(os.path.join(bigctx, "Dockerfile"), "w") as f:
            f.write(f"FROM {IMG}\nCOPY big /big\n")
        with daemons() as ds:
            for d in ds:
                rows[0].values[d.name] = _settled_rss_mb(d, tree=True)
            for d in ds:
                load_busybox(d)
                workload(d, ctx)
                push_pull(d, pushed)
                rows[1].values[d.name] = _settled_rss_mb(d, tree=True)
                rows[2].values[d.name] = rows[1].values[d.name] / rows[0].values[d.name]
            for d in ds:
                d.docker("run", "-d", "--name", "pyd-bench-cp", IMG, "sleep", "3600")
                out = os.path.join(work, f"out-{d.name}")
                rows[3].values[d.name] = peak_growth_mb(
                    d, lambda d=d: d.docker("cp", big, "pyd-bench-cp:/big")
                )
                rows[4].values[d.name] = peak_growth_mb(
                    d, lambda d=d, out=out: d.docker("cp", "pyd-bench-cp:/big", out)
                )
                shutil.rmtree(out, ignore_errors=True)
                if os.path.exists(out):
                    os.unlink(out)
                d.docker("rm", "-f", "pyd-bench-cp")
            for d in ds:
                d.docker("run", "--name", "pyd-bench-biglog", IMG, "sh", "-c", _log_lines(mib))
                rows[5].values[d.name] = peak_growth_mb(
                    d,
                    lambda d=d: d.docker("logs", "pyd-bench-biglog", stdout=subprocess.DEVNULL),
                )
                d.docker("rm", "pyd-bench-biglog")
            for d in ds:
                d.docker("build", "-q", "-t", "pyd-bench-big", bigctx)
                tar = os.path.join(work, f"save-{d.name}.tar")
                rows[6].values[d.name] = peak_growth_mb(
                    d, lambda d=d, tar=tar: d.docker("save", "-o", tar, "pyd-bench-big")
                )
                d.docker("rmi", "pyd-bench-big")
                rows[7].values[d.name] = peak_growth_mb(
                    d, lambda d=d, tar=tar: d.docker("load", "-q", "-i", tar)
                )
                os.unlink(tar)
                d.docker("rmi", "pyd-bench-big")
            names = [d.name for d in ds]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{mib} MiB payloads; peak growth = the daemon process's VmHWM over its RSS before")
    print(table(rows, names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
