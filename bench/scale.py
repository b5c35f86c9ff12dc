"""Scale benchmark: listing, disk usage and start-up with many containers and images, and many
concurrent runs.

Run as C{.venv/bin/python -m bench.scale} (root). Starts pyd (and dockerd when installed, see
L{bench.common.daemons}), loads the offline busybox image into each, then at two sizes, a tenth
of C{--containers}/C{--images} and the full size (default 1,000 each):

  - loads that many small images in one `docker load` (each its own config over the shared
    busybox layer, tagged C{scale/img:I}) and creates that many containers through the API, in
    parallel (C{POST /containers/create}, image I modulo the image count);
  - times `docker ps -a`, C{GET /containers/json?all=1}, `docker images` and `docker system df`;
  - restarts the daemon on the same data and times process start to C{/_ping} answering.

pyd's tree is byte-compiled first (as an installed daemon is). Each size's "growth" row is the figure at the full size over the figure at the tenth: 10.0 or
less is linear or better. Then, at the full size, start-up again with C{--running} containers
running (`docker run -d --network none`; dockerd with C{--live-restore}, so that they survive its
restart as pyd's do), and C{--concurrent} concurrent `docker run --rm IMG true` (wall clock;
the row fails the run if any of them fails). Rows alternate daemons, as in bench.containers.
About five minutes on 2 shared cores with the defaults.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import Daemon, Row, daemons, table
from tests.helpers.daemon import REPO, unix_request
from tests.helpers.images import DEFAULT_TAG, base_layer, image_config

IMG = DEFAULT_TAG
# Exits at once on SIGTERM (see bench.containers).
LONG = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]


def images_tar(path: str, first: int, count: int) -> None:
    """A `docker load` tar of C{count} images C{scale/img:first..}: each its own config (a label)
    over the busybox layer they share."""
    layer = base_layer()
    layer_digest = hashlib.sha256(layer).hexdigest()
    manifest = []
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:

        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))

        add(f"{layer_digest}.tar", layer)
        for i in range(first, first + count):
            cfg = image_config(["sha256:" + layer_digest], {"Labels": {"scale.index": str(i)}})
            raw = json.dumps(cfg, sort_keys=True).encode()
            name = hashlib.sha256(raw).hexdigest() + ".json"
            add(name, raw)
            manifest.append(
                {"Config": name, "RepoTags": [f"scale/img:{i}"], "Layers": [f"{layer_digest}.tar"]}
            )
        add("manifest.json", json.dumps(manifest).encode())


def add_images(d: Daemon, first: int, count: int) -> None:
    """Load images C{first..first+count-1} into C{d}."""
    if count <= 0:
        return
    fd, tmp = tempfile.mkstemp(prefix="bench-scale-", suffix=".tar")
    os.close(fd)
    try:
        images_tar(tmp, first, count)
        d.docker("load", "-q", "-i", tmp, stdout=subprocess.DEVNULL)
    finally:
        os.unlink(tmp)


def add_containers(d: Daemon, first: int, count: int, images: int) -> None:
    """Create containers C{scale-c-first..} through the API, 8 requests at a time."""

    def create(i: int) -> None:
        body = json.dumps({"Image": f"scale/img:{i % images}", "Cmd": ["true"]}).encode()
        status, _, out = unix_request(
            d.sock, "POST", f"/v1.41/containers/create?name=scale-c-{i}", body, timeout=120
        )
        if status != 201:
            raise RuntimeError(f"create on {d.name}: {status} {out[:200]!r}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(first, first + count)))


def api_ms(d: Daemon, path: str, expect: int) -> float:
    """Milliseconds of one GET C{path} whose JSON array must hold at least C{expect} items."""
    t0 = time.perf_counter()
    status, _, body = unix_request(d.sock, "GET", path, timeout=120)
    ms = (time.perf_counter() - t0) * 1000
    if status != 200 or len(json.loads(body)) < expect:
        raise RuntimeError(f"GET {path} on {d.name}: {status}")
    return ms


def concurrent_runs(d: Daemon, k: int) -> tuple[float, int]:
    """Wall seconds of C{k} parallel `docker run --rm IMG true`, and how many failed."""

    def one(_: int) -> int:
        return d.docker("run", "--rm", IMG, "true", check=False).returncode

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=k) as pool:
        codes = list(pool.map(one, range(k)))
    return time.perf_counter() - t0, sum(1 for c in codes if c)


def main(argv: list[str] | None = None) -> int:
    """Populate, measure at both sizes, print the table."""
    ap = argparse.ArgumentParser(prog="python -m bench.scale")
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--running", type=int, default=100, help="running containers at start-up")
    ap.add_argument("--concurrent", type=int, default=100, help="concurrent docker run --rm")
    ap.add_argument("--runs", type=int, default=5, help="repetitions of each listing row")
    args = ap.parse_args(argv or [])
    # pyd's modules byte-compiled first, as `pip install` leaves an installed daemon: with
    # PYTHONDONTWRITEBYTECODE set (as here) every start would compile the tree anew, a
    # second of start-up that no installed daemon pays
    compileall.compile_dir(str(REPO / "pyd"), quiet=1)
    sizes = [(max(1, args.containers // 10), max(1, args.images // 10)),
             (args.containers, args.images)]  # fmt: skip
    rows: list[Row] = []
    failed = 0
    growth_of: dict[str, list[dict[str, float]]] = {}
    # dockerd keeps running containers over its own restart only with live-restore.
    with daemons(busybox=True, dockerd_args=["--live-restore"]) as ds:
        have_c, have_i = 0, 0
        for nc, ni in sizes:
            for d in ds:
                add_images(d, have_i, ni - have_i)
                add_containers(d, have_c, nc - have_c, ni)
            have_c, have_i = nc, ni
            samples: dict[str, dict[str, list[float]]] = {
                k: {d.name: [] for d in ds} for k in ("ps", "list", "images", "df")
            }
            for _ in range(args.runs):  # alternate daemons so load spikes hit both
                for d in ds:
                    samples["ps"][d.name].append(d.cli_ms("ps", "-a"))
                    samples["list"][d.name].append(api_ms(d, "/v1.41/containers/json?all=1", nc))
                    samples["images"][d.name].append(d.cli_ms("images"))
                    samples["df"][d.name].append(d.cli_ms("system", "df"))
            start: dict[str, float] = {}
            for d in ds:
                start[d.name] = d.restart()
            labels = {
                "ps": (f"docker ps -a, {nc} containers", "ms"),
                "list": (f"GET /containers/json?all=1, {nc} containers", "ms"),
                "images": (f"docker images, {ni} images", "ms"),
                "df": (f"docker system df, {nc} containers, {ni} images", "ms"),
                "start": (f"start-up to /_ping, {nc} containers, {ni} images", "s"),
            }
            values = {
                k: {n: statistics.median(v) for n, v in s.items()} for k, s in samples.items()
            }
            values["start"] = start
            for k, (label, unit) in labels.items():
                rows.append(Row(label, unit, values[k]))
                growth_of.setdefault(k, []).append(values[k])
        for k, (small, full) in growth_of.items():
            what = {"ps": "docker ps -a", "list": "GET /containers/json", "images": "docker images",
                    "df": "docker system df", "start": "start-up"}[k]  # fmt: skip
            rows.append(
                Row(
                    f"growth of {what}, {sizes[0][0]} -> {sizes[1][0]} items (linear: 10)",
                    "x",
                    {n: full[n] / small[n] for n in full if small.get(n)},
                )
            )
        if args.running:
            for d in ds:
                for i in range(args.running):
                    d.docker("run", "-d", "--network", "none", "--name", f"scale-r-{i}", IMG,
                             *LONG, stdout=subprocess.DEVNULL)  # fmt: skip
            start = {d.name: d.restart() for d in ds}
            rows.append(
                Row(
                    f"start-up to /_ping, {args.containers} containers ({args.running} running)",
                    "s",
                    start,
                )
            )
            for d in ds:
                running = d.docker("ps", "-q").stdout.split()
                if len(running) < args.running:
                    print(f"{d.name}: {len(running)} of {args.running} running after restart")
                    failed += 1
                d.docker("rm", "-f", *[f"scale-r-{i}" for i in range(args.running)],
                         stdout=subprocess.DEVNULL)  # fmt: skip
        conc: dict[str, float] = {}
        for d in ds:
            wall, errors = concurrent_runs(d, args.concurrent)
            conc[d.name] = wall
            if errors:
                print(f"{d.name}: {errors} of {args.concurrent} concurrent runs failed")
                failed += 1
        rows.append(Row(f"{args.concurrent} concurrent docker run --rm (wall)", "s", conc))
        names = [d.name for d in ds]
    print(table(rows, names))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
