"""remove_tree deletes the daemon's own trees (writable layers, bundles) with one call per
entry, hands non-empty subdirectories to the descriptor-safe walk, and never follows a symlink
out of the tree."""

from __future__ import annotations

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.storage.layers import remove_tree


class RemoveTreeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-rmtree-")
        self.addCleanup(self._cleanup)

    def _cleanup(self) -> None:
        for dirpath, dirnames, filenames in os.walk(self.tmp, topdown=False):
            for n in filenames:
                os.unlink(os.path.join(dirpath, n))
            for n in dirnames:
                p = os.path.join(dirpath, n)
                os.unlink(p) if os.path.islink(p) else os.rmdir(p)
        os.rmdir(self.tmp)

    def test_layer_and_bundle_shapes(self) -> None:
        """Empty directories, files, a FIFO, and a written upper directory all go."""
        base = os.path.join(self.tmp, "layer")
        for d in ("merged", "work/work", "diff/etc/deep"):
            os.makedirs(os.path.join(base, d))
        with open(os.path.join(base, "diff/etc/deep/f"), "w") as f:
            f.write("x")
        with open(os.path.join(base, "config.json"), "w") as f:
            f.write("{}")
        os.mkfifo(os.path.join(base, "ctl"))
        remove_tree(base)
        self.assertFalse(os.path.lexists(base))

    def test_gone_is_not_an_error(self) -> None:
        remove_tree(os.path.join(self.tmp, "never"))

    def test_symlinks_are_removed_not_followed(self) -> None:
        """A symlink to a directory outside, at the top or below a non-empty subdirectory,
        goes as a link; what it points at stays."""
        outside = os.path.join(self.tmp, "outside")
        os.makedirs(os.path.join(outside, "sub"))
        with open(os.path.join(outside, "keep"), "w") as f:
            f.write("keep")
        base = os.path.join(self.tmp, "bundle")
        os.makedirs(os.path.join(base, "diff"))
        os.symlink(outside, os.path.join(base, "link"))
        os.symlink(outside, os.path.join(base, "diff", "link"))
        os.symlink(os.path.join(outside, "sub"), os.path.join(base, "emptylink"))
        remove_tree(base)
        self.assertFalse(os.path.lexists(base))
        self.assertEqual(sorted(os.listdir(outside)), ["keep", "sub"])
