"""`python -m bench soak [--minutes N] [--clients N] [--idle N]`: the long soak (issue 18).

16 clients loop over create/start/exec/logs/stop/rm while 200 keep-alive connections sit
idle, against one pyd (tests/helpers/soak.py); prints the requests, failures and the growth of
the daemon's file descriptors, threads, RSS and database from after the warm-up to the end,
and fails when a request failed or a growth exceeds the bounds (tests/helpers/soak.py).
"""

from __future__ import annotations

import argparse

from bench.common import load_busybox, start_pyd
from tests.helpers.soak import check, run_soak


def main(argv: list[str]) -> int:
    """Run one soak and print its report."""
    p = argparse.ArgumentParser(prog="python -m bench soak")
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--idle", type=int, default=200)
    p.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline")
    args = p.parse_args(argv)
    d = start_pyd()
    try:
        load_busybox(d)
        result = run_soak(
            d.sock,
            d.pid,
            d.base + "/data",
            args.minutes * 60,
            clients=args.clients,
            idle=args.idle,
            warmup=args.warmup,
            progress=print,
        )
    finally:
        d.stop()
    print(result.report())
    bad = check(result)
    for line in bad:
        print("FAILED:", line)
    return 1 if bad else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
