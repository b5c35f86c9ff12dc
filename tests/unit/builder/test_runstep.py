"""A RUN step's cache mounts: sharing modes and in-use marks (L{pyd.engine.builder.runstep})."""

from __future__ import annotations

import os
import tempfile

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.seams import InlineBlocking
from pyd.engine.builder import fs, mounts
from pyd.engine.builder.frontend import parse_run_options
from pyd.engine.builder.runstep import CacheLocks, StepMounts
from tests.helpers.sync import run_sync


async def _no_root(ref: str) -> tuple[str, str]:
    raise AssertionError("no from= in these tests")


async def _no_drop(layer: str) -> None:
    return None


class SharingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-runstep-")
        self.addCleanup(fs.remove_tree, self.tmp)
        self.cache = mounts.CacheStore(os.path.join(self.tmp, "cache"))
        self.locks = CacheLocks()
        os.makedirs(os.path.join(self.tmp, "ctx"))

    def step(self) -> StepMounts:
        return StepMounts(
            InlineBlocking(), self.cache, self.locks, os.path.join(self.tmp, "ctx"), self.tmp,
            _no_root, _no_drop,
        )  # fmt: skip

    def prepare(self, step: StepMounts, sharing: str) -> Deferred[None]:
        opts = parse_run_options(
            [("mount", f"type=cache,target=/c,id=x,sharing={sharing}")], str, "/"
        )
        return Deferred.fromCoroutine(step.prepare(opts))

    def test_locked_waits_for_the_first_user(self) -> None:
        """sharing=locked: a second step waits until the first one closes."""
        a, b = self.step(), self.step()
        self.successResultOf(self.prepare(a, "locked"))
        waiting = self.prepare(b, "locked")
        self.assertNoResult(waiting)
        run_sync(a.close())
        self.successResultOf(waiting)
        self.assertEqual(a.host_mounts[0]["Source"], b.host_mounts[0]["Source"])
        run_sync(b.close())
        self.assertEqual(self.cache.in_use, {})

    def test_private_gets_its_own_directory_while_in_use(self) -> None:
        """sharing=private: a second concurrent user gets a fresh directory; shared shares."""
        a, b, c = self.step(), self.step(), self.step()
        self.successResultOf(self.prepare(a, "private"))
        self.successResultOf(self.prepare(b, "private"))
        self.successResultOf(self.prepare(c, "shared"))
        self.assertNotEqual(a.host_mounts[0]["Source"], b.host_mounts[0]["Source"])
        self.assertEqual(a.host_mounts[0]["Source"], c.host_mounts[0]["Source"])
        # In use: prune keeps them.
        self.assertEqual(self.cache.prune(), ([], 0))
        for s in (a, b, c):
            run_sync(s.close())
        ids, _ = self.cache.prune()
        self.assertEqual(len(ids), 2)
        self.assertEqual(self.cache.entries(), [])
