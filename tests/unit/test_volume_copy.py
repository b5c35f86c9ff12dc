"""Volume content walks (pyd.drivers.volumes.copy) never follow a link out of the volume."""

from __future__ import annotations

import os
from pathlib import Path

from pyd.drivers.volumes.copy import tree_size


class TreeSizeTests:
    """tree_size (system df, prune's reclaimed bytes)."""

    def test_counts_inside_only(self, tmp_path: Path) -> None:
        """Files (hard links once) under nested directories are counted; links to a host
        directory or file are not followed."""
        host = tmp_path / "host"
        host.mkdir()
        (host / "big").write_bytes(b"x" * 100_000)
        vol = tmp_path / "vol"
        (vol / "a" / "b").mkdir(parents=True)
        (vol / "a" / "b" / "f").write_bytes(b"y" * 10)
        (vol / "g").write_bytes(b"z" * 5)
        os.link(vol / "g", vol / "a" / "g2")
        os.symlink(str(host), vol / "hostdir")
        os.symlink(str(host / "big"), vol / "a" / "hostfile")
        assert tree_size(str(vol)) == 15 + _link_sizes(vol)
        assert tree_size(str(tmp_path / "missing")) == -1

    def test_deep_tree(self, tmp_path: Path) -> None:
        """A deep tree holds one descriptor per level, and is counted whole."""
        d = tmp_path / "vol"
        cur = d
        for _ in range(200):
            cur = cur / "d"
        cur.mkdir(parents=True)
        (cur / "f").write_bytes(b"1234")
        assert tree_size(str(d)) == 4


def _link_sizes(vol: Path) -> int:
    """Symlinks count with their own size (the length of their target), as lstat gives it."""
    return sum(
        os.lstat(os.path.join(root, n)).st_size
        for root, dirs, files in os.walk(vol)
        for n in dirs + files
        if os.path.islink(os.path.join(root, n))
    )
