"""`python -m bench [AREA...]`: run every area's benchmark (or the named ones), one after another.
`python -m bench AREA --opt ...`: one area with its own options (e.g. `soak --minutes 20`).

Each area is a module `bench/<area>.py` with a `main(argv)`; each starts its own daemons (pyd, and
dockerd when /usr/bin/dockerd exists) on temporary sockets and prints its table.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench

# ab compares two pyd trees, soak runs for 20 minutes, crash kills daemons for as long as asked:
# run them by hand
SKIP = {"common", "__main__", "ab"}
BY_HAND = {"soak", "crash"}


def areas() -> list[str]:
    """The benchmark modules under bench/."""
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name not in SKIP)


def main(argv: list[str]) -> int:
    """Run the named areas (default: all)."""
    opts: list[str] = []
    if argv and argv[0] in areas() and len(argv) > 1 and argv[1].startswith("-"):
        wanted, opts = argv[:1], argv[1:]
    else:
        wanted = argv or [a for a in areas() if a not in BY_HAND]
    unknown = [a for a in wanted if a not in areas()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(areas())}")
        return 2
    failed = []
    for area in wanted:
        print(f"== bench.{area}")
        t0 = time.monotonic()
        module = importlib.import_module(f"bench.{area}")
        try:
            rc = module.main(opts) if "argv" in module.main.__code__.co_varnames else module.main()
        except Exception as e:  # one area failing must not stop the others
            print(f"bench.{area} failed: {type(e).__name__}: {e}")
            rc = 1
        if rc:
            failed.append(area)
        print(f"   ({time.monotonic() - t0:.1f}s)\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
