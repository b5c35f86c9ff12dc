"""Benchmark: push and pull of a ~50 MB multi-layer image through a loopback registry.

Run as `.venv/bin/python -m bench.registry` (root, like the daemon). Starts Debian's
docker-registry on 127.0.0.1, and pyd (plus dockerd when installed, with
`--insecure-registry 127.0.0.1:PORT`, see L{bench.common.daemons}); loads a busybox image with four 12 MB random layers (`docker load`),
then times with the real CLI, per daemon, alternating, each run against a freshly started
empty registry on the same port (so no blob is already there and no daemon can mount it from an
earlier push):

  - `docker push 127.0.0.1:PORT/<daemon>-N:1` (compress + upload);
  - `docker pull` of it after `docker rmi` (download + verify + extract).

Prints MB/s over the image's uncompressed layer bytes (median of the runs) and, with dockerd,
the pyd/dockerd ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

from bench.common import Row, daemons, table
from tests.helpers.images import busybox_image_tar
from tests.helpers.registry import Registry, free_port

LAYER_MB = 12
LAYERS = 4


def _registry(port: int) -> Registry:
    """A fresh, empty docker-registry on 127.0.0.1:C{port}."""
    r = Registry()
    r.port, r.host, r.url = port, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    return r.start()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(prog="bench.registry")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv or [])
    base = tempfile.mkdtemp(prefix="pyd-bench-reg-")
    port = free_port()
    try:
        tar = os.path.join(base, "img.tar")
        built = busybox_image_tar(tar, "bench/src:1", random_layers=[LAYER_MB << 20] * LAYERS)
        mb = sum(len(x) for x in built.layers) / 1e6
        push: dict[str, list[float]] = {}
        pull: dict[str, list[float]] = {}
        with daemons(dockerd_args=["--insecure-registry", f"127.0.0.1:{port}"]) as ds:
            for d in ds:
                d.docker("load", "-q", "-i", tar)
            for run in range(args.runs):  # alternate daemons so load spikes hit both
                for d in ds:
                    # An empty registry each time (same port): no blob is there yet, and a
                    # daemon's memory of earlier pushes cannot turn the upload into a mount.
                    registry = _registry(port)
                    try:
                        name = f"{registry.host}/{d.name}-{run}:1"
                        d.docker("tag", "bench/src:1", name)
                        t0 = time.monotonic()
                        d.docker("push", name)
                        push.setdefault(d.name, []).append(time.monotonic() - t0)
                        d.docker("rmi", name, "bench/src:1")
                        t0 = time.monotonic()
                        d.docker("pull", name)
                        pull.setdefault(d.name, []).append(time.monotonic() - t0)
                        d.docker("tag", name, "bench/src:1")
                        d.docker("rmi", name)
                    finally:
                        registry.stop()
            names = [d.name for d in ds]
        push_mb = {n: mb / statistics.median(v) for n, v in push.items()}
        pull_mb = {n: mb / statistics.median(v) for n, v in pull.items()}
        rows = [
            Row(f"push {mb:.0f} MB, {len(built.layers)} layers", "MB/s", push_mb, True),
            Row(f"pull {mb:.0f} MB, {len(built.layers)} layers", "MB/s", pull_mb, True),
        ]
        sys.stdout.write(table(rows, names) + "\n")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
