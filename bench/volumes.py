"""Benchmark: volume API latency, and `docker run` with a fresh named volume (copy-up).

Run as `.venv/bin/python -m bench.volumes` (root). Starts pyd (and dockerd when installed, see
L{bench.common.daemons}) and times against each, over the Unix socket, `POST /volumes/create`,
`GET /volumes/NAME`, `GET /volumes` and `DELETE /volumes/NAME` (medians of N rounds, alternating
daemons); then `docker run --rm -v NEWVOL:/data IMG true` on an image whose /data holds many
small files and a few large ones (the daemon copies them up into the empty volume) next to the
same run with no volume. Prints one table with the pyd/dockerd ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from bench.common import Daemon, Row, daemons, load_busybox, table
from tests.helpers.daemon import unix_request

IMG = "bench/volimg:1"


def _api(d: Daemon, i: int) -> tuple[float, float, float, float]:
    name = f"bench-{i}"
    body = json.dumps({"Name": name}).encode()
    t0 = time.perf_counter()
    status, _, _ = unix_request(d.sock, "POST", "/v1.41/volumes/create", body)
    t1 = time.perf_counter()
    assert status == 201, status
    status, _, out = unix_request(d.sock, "GET", f"/v1.41/volumes/{name}")
    t2 = time.perf_counter()
    assert status == 200 and json.loads(out)["Name"] == name
    status, _, _ = unix_request(d.sock, "GET", "/v1.41/volumes")
    t3 = time.perf_counter()
    assert status == 200
    status, _, _ = unix_request(d.sock, "DELETE", f"/v1.41/volumes/{name}")
    t4 = time.perf_counter()
    assert status == 204, status
    return t1 - t0, t2 - t1, t3 - t2, t4 - t3


def main(argv: list[str] | None = None) -> int:
    """Run and print the table."""
    ap = argparse.ArgumentParser(prog="python -m bench.volumes")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--small-files", type=int, default=1000)
    ap.add_argument("--large-mb", type=int, default=32)
    args = ap.parse_args(argv or [])
    files: dict[str, bytes | str | None] = {
        f"/data/d{i % 50}/f{i}": os.urandom(4096) for i in range(args.small_files)
    }
    for i in range(4):
        files[f"/data/big{i}"] = os.urandom(args.large_mb * 1024 * 1024 // 4)
    mb = (args.small_files * 4096 + args.large_mb * 1024 * 1024) / 1e6
    rows = [
        Row("POST /volumes/create", "ms", {}),
        Row("GET /volumes/NAME", "ms", {}),
        Row("GET /volumes", "ms", {}),
        Row("DELETE /volumes/NAME", "ms", {}),
        Row("docker run --rm IMG true (no volume)", "ms", {}),
        Row(
            f"docker run --rm -v NEW:/data (copy-up {args.small_files} files, {mb:.0f} MB)",
            "ms",
            {},
        ),
    ]
    with daemons() as ds:
        for d in ds:
            load_busybox(d, IMG, extra_files=files)
        lat: dict[str, list[tuple[float, float, float, float]]] = {d.name: [] for d in ds}
        for i in range(args.rounds):
            for d in ds:
                lat[d.name].append(_api(d, i))
        plain: dict[str, list[float]] = {d.name: [] for d in ds}
        copy: dict[str, list[float]] = {d.name: [] for d in ds}
        for i in range(args.runs):
            for d in ds:
                plain[d.name].append(d.cli_ms("run", "--rm", IMG, "true"))
                copy[d.name].append(
                    d.cli_ms("run", "--rm", "-v", f"bench-cu{i}:/data", IMG, "true")
                )
                d.docker("volume", "rm", f"bench-cu{i}")
        for d in ds:
            for j in range(4):
                rows[j].values[d.name] = statistics.median(x[j] for x in lat[d.name]) * 1000
            rows[4].values[d.name] = statistics.median(plain[d.name])
            rows[5].values[d.name] = statistics.median(copy[d.name])
        names = [d.name for d in ds]
    print(table(rows, names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
