"""A/B: the same workload against two pyd source trees, alternating, to measure a change.

Run as `.venv/bin/python -m bench.ab --a /path/to/tree-before --b /path/to/tree-after [what...]`
(root); `what` is any of run, life, api, ping, conc, volumes, images, cp (default: run life api;
conc: --concurrent parallel `docker run --rm`, wall clock, each iteration; volumes: the volume
API as bench.volumes times it; images: `docker images`, `image inspect`, `rm` of a created one;
cp: `docker cp` of a 32 MiB file into a running container). Each tree runs as its own
twistd (PYTHONPATH = the tree), both with the busybox image; rows alternate A and B so a load
spike hits both. Besides latencies it prints the daemon's CPU time per iteration (user+system,
all threads: far less sensitive to a loaded machine than wall-clock) and RSS at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bench.common import Daemon, latency_ms, load_busybox, rss_mb, throughput
from tests.helpers.daemon import PydDaemon, unix_request
from tests.helpers.images import DEFAULT_TAG as IMG

LONG = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]


def _start(tree: str, name: str) -> Daemon:
    # absolute: the daemon runs in its own directory, where a relative tree (".") would name
    # nothing and pyd would silently come from the virtualenv's installed copy instead
    p = PydDaemon(env={"PYTHONPATH": os.path.abspath(tree)}).start()
    assert p.proc is not None
    return Daemon(name, p.sock, p.proc.pid, p.cleanup, str(p.base))


def _cpu_ms(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") * 1000


def _concurrent(d: Daemon, k: int) -> float:
    """Wall seconds of C{k} parallel `docker run --rm IMG true` (every one must succeed)."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=k) as pool:
        list(pool.map(lambda _: d.docker("run", "--rm", IMG, "true"), range(k)))
    return time.perf_counter() - t0


def _volume_api(d: Daemon, i: int, rec: Callable[[Daemon, str, float], None]) -> None:
    """The volume API as bench.volumes times it: create, inspect, list, remove."""
    name = f"ab-v{i}"
    body = json.dumps({"Name": name}).encode()
    for label, method, path, data, want in (
        ("POST /volumes/create", "POST", "/v1.41/volumes/create", body, 201),
        ("GET /volumes/NAME", "GET", f"/v1.41/volumes/{name}", None, 200),
        ("GET /volumes", "GET", "/v1.41/volumes", None, 200),
        ("DELETE /volumes/NAME", "DELETE", f"/v1.41/volumes/{name}", None, 204),
    ):
        t0 = time.perf_counter()
        status = (
            unix_request(d.sock, method, path, data)[0]
            if data
            else unix_request(d.sock, method, path)[0]
        )
        rec(d, f"{label} (ms)", (time.perf_counter() - t0) * 1000)
        assert status == want, (label, status)


def main(argv: list[str] | None = None) -> int:
    """Run both daemons and print one line per measurement: A, B and B/A."""
    ap = argparse.ArgumentParser(prog="python -m bench.ab")
    ap.add_argument("--a", required=True, help="source tree A (before)")
    ap.add_argument("--b", default=os.getcwd(), help="source tree B (after; default: here)")
    ap.add_argument("-n", type=int, default=10, help="iterations")
    ap.add_argument("--concurrent", type=int, default=10, help="parallel runs of `conc`")
    ap.add_argument("what", nargs="*", default=["run", "life", "api"])
    args = ap.parse_args(argv)
    ds = [_start(args.a, "A"), _start(args.b, "B")]
    res: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}

    def rec(d: Daemon, k: str, v: float) -> None:
        res[d.name].setdefault(k, []).append(v)

    blob = ""
    try:
        for d in ds:
            load_busybox(d)
            d.docker("run", "--rm", IMG, "true")
        if "cp" in args.what:
            fd, blob = tempfile.mkstemp(prefix="bench-ab-cp-")
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32 << 20))
            for d in ds:
                d.docker("run", "-d", "--name", "ab-cp", IMG, *LONG)
        cpu0 = {d.name: _cpu_ms(d.pid) for d in ds}
        for i in range(args.n):
            for d in ds:
                if "run" in args.what:
                    rec(d, "docker run --rm IMG true (ms)", d.cli_ms("run", "--rm", IMG, "true"))
                    ms = d.cli_ms("run", "-d", "--name", f"ab-d{i}", IMG, *LONG)
                    rec(d, "docker run -d (ms)", ms)
                    d.docker("rm", "-f", f"ab-d{i}")
                if "life" in args.what:
                    nm = f"ab-l{i}"
                    rec(d, "docker create (ms)", d.cli_ms("create", "--name", nm, IMG, *LONG))
                    rec(d, "docker start (ms)", d.cli_ms("start", nm))
                    rec(d, "docker stop (ms)", d.cli_ms("stop", nm))
                    rec(d, "docker rm (ms)", d.cli_ms("rm", nm))
                if "volumes" in args.what:
                    _volume_api(d, i, rec)
                if "images" in args.what:
                    rec(d, "docker images (ms)", d.cli_ms("images"))
                    rec(d, "docker image inspect (ms)", d.cli_ms("image", "inspect", IMG))
                    nm = f"ab-r{i}"
                    d.docker("create", "--name", nm, IMG, "true")
                    rec(d, "docker rm, created (ms)", d.cli_ms("rm", nm))
                if "conc" in args.what:
                    rec(d, f"{args.concurrent} concurrent docker run --rm (s)",
                        _concurrent(d, args.concurrent))  # fmt: skip
                if "cp" in args.what:
                    rec(d, "docker cp 32 MiB into a container (ms)",
                        d.cli_ms("cp", blob, "ab-cp:/tmp/"))  # fmt: skip
                if "api" in args.what:
                    for path in ("/_ping", "/v1.41/volumes", "/v1.41/containers/json"):
                        t0 = time.perf_counter()
                        for _ in range(20):
                            unix_request(d.sock, "GET", path)
                        ms = (time.perf_counter() - t0) / 20 * 1000
                        rec(d, f"GET {path}, new connection (ms)", ms)
        for d in ds:
            rec(d, "daemon CPU per iteration (ms)", (_cpu_ms(d.pid) - cpu0[d.name]) / args.n)
        if "ping" in args.what:
            for d in ds:
                rec(d, "/_ping latency, keep-alive (ms)", latency_ms(d.sock, "/_ping"))
                rec(d, "/_ping req/s, 8 clients", throughput(d.sock, "/_ping", 8, 2))
        time.sleep(1)
        for d in ds:
            rec(d, "RSS at the end (MB)", rss_mb(d.pid))
    finally:
        for d in ds:
            d.stop()
        if blob:
            os.unlink(blob)
    width = max(len(k) for k in res["A"])
    print(f"{'measurement':<{width}}  {'A':>9}  {'B':>9}  B/A")
    for k in res["A"]:
        a, b = statistics.median(res["A"][k]), statistics.median(res["B"][k])
        ratio = f"{b / a:.2f}" if a else "-"
        print(f"{k:<{width}}  {a:9.2f}  {b:9.2f}  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
