"""Every refusal of a hostile build context names the entry or the rule, and shows no internals.

The suite's hostile archives (tests/helpers/hostile.py) are fed to the build context's refusal
path (L{pyd.engine.builder.fs.extract_context}, what C{POST /build} runs on the upload): each
C{BuildFileError} (a 400) must name the entry when an entry is at fault and contain no Python
exception class, errno text in Python's form or host path; what is not refused stays inside the
context directory.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.builder.fs import BuildFileError, extract_context
from tests.helpers.hostile import CONTAINED, CONTEXT_RULES, REFUSED
from tests.helpers.leaks import leaks

# Device nodes are image-layer rules; a build context keeps no device (skipped, not refused).
_LAYER_ONLY = {"block device", "character device of a disk"}


class HostileContextTests(SynchronousTestCase):
    """The hostile archives as build contexts."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-hostile-ctx-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def _extract(self, case: str, data: bytes) -> tuple[str, BuildFileError | None]:
        dest = os.path.join(self.tmp, case.replace(" ", "-"), "context")
        os.makedirs(dest)
        try:
            extract_context(io.BytesIO(data), dest)
        except BuildFileError as e:
            return dest, e
        return dest, None

    def test_refusals(self) -> None:
        """Each refused archive's message names its entry (when an entry is at fault) and
        shows no internals; an archive the context keeps stayed inside it."""
        refused = 0
        for case, (data, entry) in sorted(REFUSED.items()):
            dest, err = self._extract(case, data)
            if err is None:
                self.assertIn(case, _LAYER_ONLY)
                continue
            refused += 1
            message = str(err)
            self.assertEqual(leaks(message, [self.tmp, dest]), [], (case, message))
            if entry is not None and case not in _LAYER_ONLY:
                self.assertIn(entry, message, case)
            self.assertIn(CONTEXT_RULES[case], message, case)
        self.assertEqual(refused, len(REFUSED) - len(_LAYER_ONLY))

    def test_contained(self) -> None:
        """What is not refused lands inside the context directory and nowhere else."""
        for case, data in sorted(CONTAINED.items()):
            before = set(os.listdir("/etc"))
            dest, err = self._extract(case, data)
            self.assertEqual(set(os.listdir("/etc")), before, case)
            self.assertEqual(os.listdir(os.path.dirname(dest)), ["context"], case)
            if err is not None:
                self.assertEqual(leaks(str(err), [self.tmp, dest]), [], (case, str(err)))
