"""Disk usage of a tree as the tests measure what an operation left behind."""

from __future__ import annotations

import os


def tree_bytes(root: str) -> int:
    """Bytes allocated to the files under C{root} (links not followed; files that vanish while
    walked count nothing)."""
    total = 0
    for d, _dirs, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total
