"""The local volume driver deletes a removed volume's trash entry (pyd/drivers/volumes/local.py
C{_delete_tree}): an empty plain volume by two rmdirs, anything else by rmtree; no link is
followed either way."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.volumes.local import DATA, _delete_tree


class DeleteTreeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="pyd-deltree-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.trash = os.path.join(self.root, ".trash-v-1234")
        self.outside = os.path.join(self.root, "outside")
        os.mkdir(self.outside)

    def test_empty_plain_volume(self) -> None:
        os.makedirs(os.path.join(self.trash, DATA))
        _delete_tree(self.trash)
        self.assertFalse(os.path.lexists(self.trash))

    def test_volume_with_data_and_options(self) -> None:
        os.makedirs(os.path.join(self.trash, DATA, "sub"))
        with open(os.path.join(self.trash, DATA, "sub", "f"), "w") as f:
            f.write("x")
        with open(os.path.join(self.trash, "opts.json"), "w") as f:
            f.write("{}")
        _delete_tree(self.trash)
        self.assertFalse(os.path.lexists(self.trash))

    def test_data_a_link_to_an_empty_directory_elsewhere(self) -> None:
        """The link is deleted, never the empty directory it names."""
        os.mkdir(self.trash)
        os.symlink(self.outside, os.path.join(self.trash, DATA))
        _delete_tree(self.trash)
        self.assertFalse(os.path.lexists(self.trash))
        self.assertTrue(os.path.isdir(self.outside))

    def test_trash_entry_a_link(self) -> None:
        """An entry that is itself a link is not followed: what it names stays whole."""
        os.mkdir(os.path.join(self.outside, DATA))
        os.symlink(self.outside, self.trash)
        _delete_tree(self.trash)
        self.assertTrue(os.path.isdir(os.path.join(self.outside, DATA)))

    def test_missing_data(self) -> None:
        os.mkdir(self.trash)
        _delete_tree(self.trash)
        self.assertFalse(os.path.lexists(self.trash))
