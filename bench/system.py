"""Benchmark: the request path of the daemon (issue 2): /_ping and /info latency, requests/s with
1 and 8 keep-alive clients (medians of alternating rounds), and memory at rest.

Run as `.venv/bin/python -m bench.system` (root). With dockerd installed it is measured alongside
(see L{bench.common.daemons}). RSS is read after the load, once the daemon idled for a second.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.common import Row, daemons, latency_ms, rss_mb, table, throughput, tree_rss_mb


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    p = argparse.ArgumentParser(prog="python -m bench.system")
    p.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput run")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of the rate rows")
    args = p.parse_args(argv)
    rows = [
        Row("/_ping latency (1 conn)", "ms", {}),
        Row("/info latency (1 conn)", "ms", {}),
        Row("/_ping req/s, 1 client", "req/s", {}, True),
        Row("/_ping req/s, 8 clients", "req/s", {}, True),
        Row("/info req/s, 8 clients", "req/s", {}, True),
        Row("RSS at rest (daemon process)", "MB", {}),
        Row("RSS at rest (daemon + children, e.g. containerd)", "MB", {}),
    ]
    with daemons() as ds:
        for d in ds:
            rows[0].values[d.name] = latency_ms(d.sock, "/_ping")
            rows[1].values[d.name] = latency_ms(d.sock, "/v1.41/info", n=100)
        # Rates as medians of alternating rounds: one 3 s run per daemon moved by 30-50 %
        # between runs (the client processes share the 2 cores with the daemon).
        rates: dict[tuple[int, str], list[float]] = {}
        for _ in range(args.rounds):
            for d in ds:
                for i, (path, clients) in enumerate(
                    (("/_ping", 1), ("/_ping", 8), ("/v1.41/info", 8)), start=2
                ):
                    rate = throughput(d.sock, path, clients, args.seconds)
                    rates.setdefault((i, d.name), []).append(rate)
        for (i, name), values in rates.items():
            rows[i].values[name] = statistics.median(values)
        for d in ds:
            time.sleep(1)
            rows[5].values[d.name] = rss_mb(d.pid)
            rows[6].values[d.name] = tree_rss_mb(d.pid)
        names = [d.name for d in ds]
    print(table(rows, names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
