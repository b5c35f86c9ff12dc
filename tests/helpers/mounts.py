"""Removing a test's scratch tree with whatever the code under test mounted in it (test helper).

The engine mounts real things while unit tests run as root (a container's /dev/shm tmpfs, for
one), and a test that ends with a container still running does not unmount them: C{rmtree} then
leaves the tree and its mounts behind. L{remove_tree} detaches every mount below the root first.
"""

from __future__ import annotations

import ctypes
import os
import shutil

MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def mounts_under(root: str) -> list[str]:
    """Mount points at or below C{root} in this mount namespace, deepest first."""
    root = os.path.realpath(root)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == root or point.startswith(root + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def remove_tree(root: str) -> None:
    """Detach every mount below C{root}, then remove it; raise if a mount would not go."""
    for point in mounts_under(root):
        if _libc.umount2(os.fsencode(point), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"umount {point}: {os.strerror(err)}")
    shutil.rmtree(root, ignore_errors=True)
