"""Benchmark: `docker load` / `docker save` of a ~50 MB multi-layer image through a real pyd.

Run as `.venv/bin/python -m bench.images` (root). Builds the image offline (busybox base plus
random-data layers, see tests/helpers/images.py), starts a pyd daemon on a temporary data root and
times with the real CLI, over several rounds: a cold `docker load` (empty store), a warm
`docker load` (all layers already stored: only verification), `docker save`, and `docker rmi`.
Prints seconds and MB/s (archive size / time). No dockerd is installed here to compare with.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import busybox_image_tar


def main() -> None:
    """Run the benchmark and print a small table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layers", type=int, default=6, help="random layers of --layer-mb each")
    ap.add_argument("--layer-mb", type=float, default=8.0)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="pyd-bench-images-")
    tar = os.path.join(base, "image.tar")
    built = busybox_image_tar(
        tar, "bench/image:1", random_layers=[int(args.layer_mb * (1 << 20))] * args.layers
    )
    size_mb = os.path.getsize(tar) / 1e6
    daemon = PydDaemon(os.path.join(base, "pyd"))
    results: dict[str, list[float]] = {"load (cold)": [], "load (warm)": [], "save": [], "rmi": []}
    try:
        daemon.start()
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            daemon.docker("load", "-q", "-i", tar)
            t1 = time.perf_counter()
            daemon.docker("load", "-q", "-i", tar)
            t2 = time.perf_counter()
            out = os.path.join(base, "saved.tar")
            daemon.docker("save", "-o", out, "bench/image:1")
            t3 = time.perf_counter()
            daemon.docker("rmi", "bench/image:1")
            t4 = time.perf_counter()
            os.unlink(out)
            results["load (cold)"].append(t1 - t0)
            results["load (warm)"].append(t2 - t1)
            results["save"].append(t3 - t2)
            results["rmi"].append(t4 - t3)
    finally:
        daemon.cleanup()
        os.unlink(tar)
        os.rmdir(base)
    print(f"image: {len(built.diff_ids)} layers, archive {size_mb:.1f} MB, {args.rounds} rounds")
    print(f"{'operation':<14} {'median s':>9} {'min s':>8} {'MB/s':>8}")
    for name, times in results.items():
        med = statistics.median(times)
        mbs = f"{size_mb / med:8.1f}" if name != "rmi" else f"{'-':>8}"
        print(f"{name:<14} {med:9.3f} {min(times):8.3f} {mbs}")


if __name__ == "__main__":
    main()
