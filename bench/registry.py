"""Benchmark: push and pull of a ~50 MB multi-layer image through pyd and a loopback registry.

Run as `.venv/bin/python -m bench.registry` (root, like the daemon). Starts Debian's
docker-registry on 127.0.0.1 and a pyd daemon on a temporary data root, loads a busybox image
with four 12 MB random layers (`docker load`), then times with the real CLI:

  - `docker push 127.0.0.1:PORT/bench:1` (compress + upload, registry empty);
  - `docker pull` of the same after `docker rmi` (download + verify + extract).

Prints MB/s over the image's layer bytes. There is no dockerd on this machine to compare with;
when one is, run the same CLI commands against it with DOCKER_HOST set.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import busybox_image_tar
from tests.helpers.registry import Registry

LAYER_MB = 12
LAYERS = 4


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark once (or C{--runs N} times) and print the figures."""
    ap = argparse.ArgumentParser(prog="bench.registry")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args(argv)
    base = tempfile.mkdtemp(prefix="pyd-bench-reg-")
    registry = Registry().start()
    daemon = PydDaemon(os.path.join(base, "pyd"))
    try:
        daemon.start()
        tar = os.path.join(base, "img.tar")
        built = busybox_image_tar(tar, "bench/src:1", random_layers=[LAYER_MB << 20] * LAYERS)
        total = sum(len(x) for x in built.layers)
        daemon.docker("load", "-q", "-i", tar)
        for run in range(args.runs):
            name = f"{registry.host}/bench{run}:1"
            daemon.docker("tag", "bench/src:1", name)
            t0 = time.monotonic()
            daemon.docker("push", name)
            push_s = time.monotonic() - t0
            daemon.docker("rmi", name)
            daemon.docker("rmi", "bench/src:1")
            t0 = time.monotonic()
            daemon.docker("pull", name)
            pull_s = time.monotonic() - t0
            daemon.docker("tag", name, "bench/src:1")
            mb = total / 1e6
            sys.stdout.write(
                f"run {run + 1}: image {mb:.1f} MB in {len(built.layers)} layers | "
                f"push {push_s:.2f}s = {mb / push_s:.1f} MB/s | "
                f"pull {pull_s:.2f}s = {mb / pull_s:.1f} MB/s\n"
            )
    finally:
        daemon.cleanup()
        registry.stop()
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
