"""Benchmark: `docker build` (classic builder) through a real pyd, no-cache and fully cached.

Run as `.venv/bin/python -m bench.build` (root). Starts a pyd daemon on a temporary data root,
loads the offline busybox test image, writes a context of about 10 MB (a few large files and many
small ones) with a Dockerfile of several COPY and RUN steps, then times with the real docker CLI:
a `--no-cache` build, and a second, fully cached build (`---> Using cache` for every step), N rounds
each, printing medians. RUN steps are skipped (`--no-run`) when the daemon has no container runtime.
There is no dockerd on this machine to compare with.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox


def _context(base: str, with_run: bool) -> str:
    ctx = os.path.join(base, "ctx")
    os.makedirs(os.path.join(ctx, "src"))
    for i in range(4):
        with open(os.path.join(ctx, f"blob{i}.bin"), "wb") as f:
            f.write(os.urandom(2 * 1024 * 1024))
    for i in range(500):
        d = os.path.join(ctx, "src", f"d{i % 20}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}.txt"), "wb") as f:
            f.write(os.urandom(4096))
    lines = [f"FROM {DEFAULT_TAG}", "WORKDIR /app", "COPY blob0.bin blob1.bin /app/data/"]
    if with_run:
        lines += ["RUN ls -l /app/data > /app/listing.txt"]
    lines += ["COPY src /app/src", "ENV MODE=bench"]
    if with_run:
        lines += ["RUN du -s /app > /app/du.txt", "RUN echo done"]
    lines += ["COPY blob2.bin blob3.bin /app/more/", 'CMD ["sh"]']
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return ctx


def _time_build(d: PydDaemon, ctx: str, *extra: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = d.docker("build", *extra, "-t", "bench-build", ctx, timeout=600)
    return time.perf_counter() - t0, r.stdout


def main() -> None:
    """Run the benchmark and print the medians."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-run", action="store_true", help="leave RUN steps out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyd-bench-build-") as base:
        d = PydDaemon(base)
        try:
            d.start()
            load_busybox(d)
            ctx = _context(base, not args.no_run)
            size = sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(ctx) for f in fs)
            cold: list[float] = []
            warm: list[float] = []
            for _ in range(args.rounds):
                dt, _ = _time_build(d, ctx, "--no-cache")
                cold.append(dt)
                dt, out = _time_build(d, ctx)
                assert "Using cache" in out, out
                warm.append(dt)
            steps = out.count("Step ")
            print(f"context: {size / 1e6:.1f} MB, {steps} steps, RUN steps: {not args.no_run}")
            print(
                f"no-cache build: median {statistics.median(cold):.2f} s  (runs: "
                + ", ".join(f"{x:.2f}" for x in cold)
                + ")"
            )
            print(
                f"cached build:   median {statistics.median(warm):.2f} s  (runs: "
                + ", ".join(f"{x:.2f}" for x in warm)
                + ")"
            )
        finally:
            d.cleanup()


if __name__ == "__main__":
    main()
