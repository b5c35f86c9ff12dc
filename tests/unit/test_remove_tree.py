"""pyd.drivers.trees.remove_tree deletes the daemon's own trees (writable layers, bundles,
removed volumes) beneath descriptors, one call per entry, and never follows a link out of the
tree."""

from __future__ import annotations

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.trees import remove_tree
from pyd.drivers.volumes.local import DATA


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

    def test_volume_shapes(self) -> None:
        """A removed volume: an empty _data; _data with files and options; _data missing."""
        for i, (files, opts) in enumerate(((None, False), ({"sub/f": "x"}, True), (None, None))):
            trash = os.path.join(self.tmp, f".trash-v{i}")
            os.mkdir(trash)
            if opts is not None:
                os.mkdir(os.path.join(trash, DATA))
            for name, text in (files or {}).items():
                os.makedirs(os.path.dirname(os.path.join(trash, DATA, name)), exist_ok=True)
                with open(os.path.join(trash, DATA, name), "w") as f:
                    f.write(text)
            if opts:
                with open(os.path.join(trash, "opts.json"), "w") as f:
                    f.write("{}")
            remove_tree(trash)
            self.assertFalse(os.path.lexists(trash), i)

    def test_top_a_link(self) -> None:
        """A tree whose own path is a link: the link goes, what it names stays whole."""
        outside = os.path.join(self.tmp, "outside")
        os.makedirs(os.path.join(outside, DATA))
        link = os.path.join(self.tmp, ".trash-v-link")
        os.symlink(outside, link)
        remove_tree(link)
        self.assertFalse(os.path.lexists(link))
        self.assertTrue(os.path.isdir(os.path.join(outside, DATA)))
