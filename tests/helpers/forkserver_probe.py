"""A helper module for the fork server's tests: what a helper sees and how it ends.

C{main([MODE, ...])}: C{echo} prints one JSON line (its args, its pid, its fd 0's first bytes,
whether fd 3 is open, which descriptors it holds) and a line on stderr, then returns the exit
status given as the last arg; C{kill} ends by SIGKILL; C{raise} raises. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def main(argv: list[str]) -> int:
    """See the module docstring."""
    mode = argv[0]
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "raise":
        raise RuntimeError("probe failed")
    try:
        first = os.pread(0, 8, 0).decode("ascii", "replace")
    except OSError:
        first = ""
    fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
    sys.stdout.write(json.dumps({"args": argv, "pid": os.getpid(), "stdin": first, "fds": fds}))
    sys.stdout.write("\n")
    sys.stderr.write("probe stderr\n")
    return int(argv[-1])
