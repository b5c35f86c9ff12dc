"""Benchmark: `docker build` (classic builder) through a real pyd, no-cache and fully cached.

Run as `.venv/bin/python -m bench.build` (root). Starts pyd (and dockerd when installed, see
L{bench.common.daemons}), loads the offline busybox test image into each, writes a context of about 10 MB (a few large files and many
small ones) with a Dockerfile of several COPY and RUN steps, then times with the real docker CLI
(DOCKER_BUILDKIT=0: the classic builder) against each daemon, alternating: a `--no-cache` build,
and a second, fully cached build (`---> Using cache` for every step), N rounds each, printing
medians and the pyd/dockerd ratio; plus a `--no-cache` build of a Dockerfile of 17
metadata-only steps (ENV/LABEL/EXPOSE/USER/STOPSIGNAL/CMD). `--no-run` leaves the RUN steps out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from bench.common import Daemon, Row, daemons, table
from tests.helpers.images import DEFAULT_TAG


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


def _meta_context(base: str) -> str:
    """A tiny context whose Dockerfile is all metadata-only steps (no RUN/COPY)."""
    ctx = os.path.join(base, "meta")
    os.makedirs(ctx)
    lines = [f"FROM {DEFAULT_TAG}"]
    for i in range(6):
        lines += [f"ENV V{i}=value{i}", f"LABEL l{i}=x{i}"]
    lines += ["EXPOSE 80", "USER app", "STOPSIGNAL SIGTERM", 'CMD ["sh"]']
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return ctx


def _time_build(d: Daemon, ctx: str, *extra: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = d.docker("build", *extra, "-t", "bench-build", ctx)
    return time.perf_counter() - t0, r.stdout.decode()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(prog="python -m bench.build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-run", action="store_true", help="leave RUN steps out")
    args = ap.parse_args(argv or [])
    with tempfile.TemporaryDirectory(prefix="pyd-bench-build-") as base:
        ctx = _context(base, not args.no_run)
        meta_ctx = _meta_context(base)
        meta: dict[str, list[float]] = {}
        size = sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(ctx) for f in fs)
        cold: dict[str, list[float]] = {}
        warm: dict[str, list[float]] = {}
        steps = 0
        with daemons(busybox=True) as ds:
            for _ in range(args.rounds):
                for d in ds:
                    dt, _ = _time_build(d, ctx, "--no-cache")
                    cold.setdefault(d.name, []).append(dt)
                    dt, out = _time_build(d, ctx)
                    assert "Using cache" in out, out
                    warm.setdefault(d.name, []).append(dt)
                    steps = out.count("Step ")
                    dt, _ = _time_build(d, meta_ctx, "--no-cache")
                    meta.setdefault(d.name, []).append(dt)
            names = [d.name for d in ds]
    what = f"{size / 1e6:.0f} MB context, {steps} steps" + ("" if not args.no_run else ", no RUN")
    rows = [
        Row(f"docker build --no-cache ({what})", "s", {n: statistics.median(v) for n, v in cold.items()}),
        Row(f"docker build, all cached ({what})", "s", {n: statistics.median(v) for n, v in warm.items()}),
        Row("docker build --no-cache, 17 metadata-only steps", "s", {n: statistics.median(v) for n, v in meta.items()}),
    ]  # fmt: skip
    print(table(rows, names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
