"""Benchmark: volume API latency through a real pyd, and copy-up throughput of the driver.

Run as `.venv/bin/python -m bench.volumes` (root). Starts a pyd daemon on a temporary data root
and times, over the Unix socket, `POST /volumes/create`, `GET /volumes/NAME` and
`DELETE /volumes/NAME` (medians of N rounds). Then times the copy-up routine
(L{pyd.drivers.volumes.copy.copy_tree}) on a generated tree of many small files plus a few large
ones, and prints MB/s and files/s next to `cp -a` of the same tree. There is no dockerd on this machine to compare with.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from pyd.drivers.volumes.copy import copy_tree
from tests.helpers.daemon import PydDaemon


def _api(daemon: PydDaemon, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {"create": [], "inspect": [], "remove": []}
    for i in range(rounds):
        name = f"bench-{i}"
        t0 = time.perf_counter()
        status, _, _ = daemon.request("POST", "/volumes/create", {"Name": name})
        t1 = time.perf_counter()
        assert status == 201
        status, _, body = daemon.request("GET", f"/volumes/{name}")
        t2 = time.perf_counter()
        assert status == 200 and json.loads(body)["Name"] == name
        status, _, _ = daemon.request("DELETE", f"/volumes/{name}")
        t3 = time.perf_counter()
        assert status == 204
        times["create"].append(t1 - t0)
        times["inspect"].append(t2 - t1)
        times["remove"].append(t3 - t2)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def _copy(base: str, small: int, large_mb: int) -> tuple[float, float, int, float]:
    src = os.path.join(base, "src")
    for i in range(small):
        d = os.path.join(src, f"d{i % 50}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}"), "wb") as f:
            f.write(os.urandom(4096))
    for i in range(4):
        with open(os.path.join(src, f"big{i}"), "wb") as f:
            f.write(os.urandom(large_mb * 1024 * 1024 // 4))
    total = small * 4096 + large_mb * 1024 * 1024
    dst = os.path.join(base, "dst")
    os.mkdir(dst)
    t0 = time.perf_counter()
    n = copy_tree(src, dst)
    dt = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run(["cp", "-a", src, os.path.join(base, "cp-a")], check=True)
    dt_cp = time.perf_counter() - t0
    return total / dt / 1e6, n / dt, n, total / dt_cp / 1e6


def main(argv: list[str] | None = None) -> int:
    """Run once and print the figures."""
    ap = argparse.ArgumentParser(prog="bench.volumes")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--small-files", type=int, default=2000)
    ap.add_argument("--large-mb", type=int, default=64)
    args = ap.parse_args(argv)
    base = tempfile.mkdtemp(prefix="pyd-bench-vol-")
    daemon = PydDaemon(os.path.join(base, "pyd"))
    try:
        daemon.start()
        lat = _api(daemon, args.rounds)
        print(
            f"volume API median over {args.rounds}: create {lat['create']:.2f} ms, "
            f"inspect {lat['inspect']:.2f} ms, remove {lat['remove']:.2f} ms"
        )
    finally:
        daemon.cleanup()
    try:
        mbps, fps, n, cp_mbps = _copy(base, args.small_files, args.large_mb)
        print(
            f"copy-up: {n} entries ({args.small_files} x 4 KiB + {args.large_mb} MiB): "
            f"{mbps:.0f} MB/s, {fps:.0f} entries/s (cp -a of the same tree: {cp_mbps:.0f} MB/s)"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
