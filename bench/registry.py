"""Benchmark: push and pull of a ~50 MB multi-layer image through a loopback registry.

Run as `.venv/bin/python -m bench.registry` (root, like the daemon). Starts Debian's
docker-registry on 127.0.0.1, and pyd (plus dockerd when /usr/bin/dockerd exists, see
L{bench.common.daemons}); loads a busybox image with four 12 MB random layers (`docker load`),
then times with the real CLI, per daemon:

  - `docker push 127.0.0.1:PORT/<daemon>-N:1` into an empty repository (compress + upload);
  - `docker pull` of it after `docker rmi` (download + verify + extract).

Prints MB/s over the image's uncompressed layer bytes (median of the runs) and, with dockerd,
the pyd/dockerd ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench.common import Daemon, Row, daemons, table
from tests.helpers.daemon import DOCKER
from tests.helpers.images import busybox_image_tar
from tests.helpers.registry import Registry

LAYER_MB = 12
LAYERS = 4


def _docker(d: Daemon, config: str, *args: str) -> None:
    env = {**os.environ, "DOCKER_HOST": d.host, "DOCKER_CONFIG": config}
    r = subprocess.run(
        [DOCKER, *args], check=False, capture_output=True, text=True, env=env, timeout=600
    )
    if r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} on {d.name}: {r.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(prog="bench.registry")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args(argv or [])
    base = tempfile.mkdtemp(prefix="pyd-bench-reg-")
    registry = Registry().start()
    try:
        tar = os.path.join(base, "img.tar")
        built = busybox_image_tar(tar, "bench/src:1", random_layers=[LAYER_MB << 20] * LAYERS)
        mb = sum(len(x) for x in built.layers) / 1e6
        push: dict[str, float] = {}
        pull: dict[str, float] = {}
        with daemons() as ds:
            for d in ds:
                config = os.path.join(base, f"config-{d.name}")
                _docker(d, config, "load", "-q", "-i", tar)
                push_s, pull_s = [], []
                for run in range(args.runs):
                    name = f"{registry.host}/{d.name}-{run}:1"
                    _docker(d, config, "tag", "bench/src:1", name)
                    t0 = time.monotonic()
                    _docker(d, config, "push", name)
                    push_s.append(time.monotonic() - t0)
                    _docker(d, config, "rmi", name, "bench/src:1")
                    t0 = time.monotonic()
                    _docker(d, config, "pull", name)
                    pull_s.append(time.monotonic() - t0)
                    _docker(d, config, "tag", name, "bench/src:1")
                    _docker(d, config, "rmi", name)
                push[d.name] = mb / statistics.median(push_s)
                pull[d.name] = mb / statistics.median(pull_s)
            names = [d.name for d in ds]
        rows = [
            Row(f"push {mb:.0f} MB, {len(built.layers)} layers", "MB/s", push, True),
            Row(f"pull {mb:.0f} MB, {len(built.layers)} layers", "MB/s", pull, True),
        ]
        sys.stdout.write(table(rows, names) + "\n")
    finally:
        registry.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
