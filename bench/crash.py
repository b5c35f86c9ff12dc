"""`python -m bench crash [--iterations N] [--seed S] [--ops a,b] [--load-mib M]`: the crash
harness's long mode (tests/helpers/crash.py): SIGKILL a pyd daemon at seeded random points of
each operation, restart it, check the invariants, repeat the operation; print a table per
operation (iterations, kills in the middle of the operation, violations) and every violation.

pyd only (dockerd is not crash-tested here). Exit status 1 when any invariant failed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from tests.helpers.crash import OPERATIONS, CrashRig, Outcome


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def main(argv: list[str]) -> int:
    """Run the iterations; print the table."""
    ap = argparse.ArgumentParser(prog="python -m bench crash")
    ap.add_argument("--iterations", type=int, default=3, help="kills per operation")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ops", default=",".join(OPERATIONS), help="comma-separated operations")
    ap.add_argument("--load-mib", type=int, default=200, help="size of the loaded image")
    args = ap.parse_args(argv)
    ops = [OPERATIONS[name] for name in args.ops.split(",")]
    rig = CrashRig(args.seed, load_mib=args.load_mib).start()
    outcomes: list[Outcome] = []
    t0 = time.monotonic()
    try:
        for op in ops:
            rig.calibrate(op)
        for i in range(args.iterations):
            for op in ops:
                o = rig.iteration(op)
                outcomes.append(o)
                mark = "ok" if o.ok else "FAIL"
                print(
                    f"  {i + 1:3d} {op.name:16s} kill at {o.delay:6.2f}s "
                    f"({'after' if o.finished_before_kill else 'during'}) {mark}",
                    flush=True,
                )
                for v in o.violations_after_restart:
                    print(f"      after restart: {v}")
                if o.repeat_error:
                    print(f"      repeat failed: {o.repeat_error[:500]}")
                for v in o.violations_after_repeat:
                    print(f"      after repeat: {v}")
    finally:
        rig.close()
    print()
    print(f"seed {args.seed}, {args.iterations} iteration(s), {time.monotonic() - t0:.0f}s")
    print(
        f"{'operation':16s} {'calibrated s':>12s} {'kills':>6s} {'during op':>10s} "
        f"{'kill points s':>15s} {'restart s':>10s} {'failed':>7s}"
    )
    for op in ops:
        mine = [o for o in outcomes if o.operation == op.name]
        print(
            f"{op.name:16s} {rig.durations.get(op.name, 0):12.2f} {len(mine):6d} "
            f"{sum(not o.finished_before_kill for o in mine):10d} "
            f"{_span([o.delay for o in mine]):>15s} "
            f"{statistics.median([o.restart_s for o in mine] or [0]):10.1f} "
            f"{sum(not o.ok for o in mine):7d}"
        )
    return 1 if any(not o.ok for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
