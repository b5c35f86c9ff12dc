"""Benchmark: `docker load` / `docker save` / `docker rmi` of a ~50 MB multi-layer image.

Run as `.venv/bin/python -m bench.images` (root). Builds the image offline (busybox base plus
random-data layers, see tests/helpers/images.py), starts pyd (and dockerd when installed, see
L{bench.common.daemons}) and times the same CLI commands against each, alternating daemons, over
several rounds: a cold `docker load` (empty store), a warm `docker load` (all layers already
stored), `docker save`, `docker rmi`, plus `docker images` and `docker inspect`. Prints medians
with the pyd/dockerd ratio; load/save rows in MB/s over the archive size.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time

from bench.common import Row, daemons, table
from tests.helpers.images import busybox_image_tar


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(prog="python -m bench.images")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layers", type=int, default=6, help="random layers of --layer-mb each")
    ap.add_argument("--layer-mb", type=float, default=8.0)
    args = ap.parse_args(argv or [])
    base = tempfile.mkdtemp(prefix="pyd-bench-images-")
    tar = os.path.join(base, "image.tar")
    built = busybox_image_tar(
        tar, "bench/image:1", random_layers=[int(args.layer_mb * (1 << 20))] * args.layers
    )
    size_mb = os.path.getsize(tar) / 1e6
    ops = ("load (cold)", "load (warm)", "save", "rmi", "images", "inspect")
    results: dict[str, dict[str, list[float]]] = {op: {} for op in ops}
    try:
        with daemons() as ds:
            for _ in range(args.rounds):
                for d in ds:
                    t = [time.perf_counter()]
                    d.docker("load", "-q", "-i", tar)
                    t.append(time.perf_counter())
                    d.docker("load", "-q", "-i", tar)
                    t.append(time.perf_counter())
                    out = os.path.join(base, "saved.tar")
                    d.docker("save", "-o", out, "bench/image:1")
                    t.append(time.perf_counter())
                    d.docker("images")
                    t.append(time.perf_counter())
                    d.docker("image", "inspect", "bench/image:1")
                    t.append(time.perf_counter())
                    d.docker("rmi", "bench/image:1")
                    t.append(time.perf_counter())
                    os.unlink(out)
                    spans = [b - a for a, b in itertools.pairwise(t)]
                    for op, dt in zip(
                        ("load (cold)", "load (warm)", "save", "images", "inspect", "rmi"),
                        spans,
                        strict=True,
                    ):
                        results[op].setdefault(d.name, []).append(dt)
            names = [d.name for d in ds]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    label = f"{size_mb:.0f} MB, {len(built.diff_ids)} layers"
    rows = []
    for op in ops:
        med = {n: statistics.median(v) for n, v in results[op].items()}
        if op in ("load (cold)", "load (warm)", "save"):
            rows.append(
                Row(f"{op}, {label}", "MB/s", {n: size_mb / s for n, s in med.items()}, True)
            )
        else:
            rows.append(Row(f"docker {op}" if op != "rmi" else "docker rmi", "ms",
                            {n: s * 1000 for n, s in med.items()}))  # fmt: skip
    print(f"{args.rounds} rounds, medians")
    print(table(rows, names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
