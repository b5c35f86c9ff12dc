"""ImageRepository's read cache: repeated reads of images, references, chains and writable
layers need no database round trip, and no read answers with less than the writes that ended
before it was asked, even when reads and writes overlap on the database thread."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.records import Layer
from pyd.state import migrate
from pyd.state.db import Database, make_engine
from pyd.state.images import ImageRepository
from tests.unit.test_volume_repo_cache import QueuedBlocking

BASE = Layer("sha256:" + "1" * 64, "sha256:" + "a" * 64, None, "c1", 10)
TOP = Layer("sha256:" + "2" * 64, "sha256:" + "b" * 64, BASE.chain_id, "c2", 20)
IMG = "sha256:" + "f" * 64
REF = "docker.io/library/x:latest"


class ImageCacheTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.blocking = QueuedBlocking()
        self.db = Database(make_engine(None), self.blocking)  # type: ignore[arg-type]  # QueuedBlocking stands in for the DB thread's Blocking
        self.db.run_sync(migrate.upgrade)
        self.addCleanup(self.db.close)
        self.repo = ImageRepository(self.db)
        for layer in (BASE, TOP):
            self.inline(self.repo.add_layer(layer))
        self.inline(self.repo.add_image(IMG, b"{}", TOP.chain_id, 30, 1))
        self.inline(self.repo.set_ref(REF, "tag", IMG, 5))

    def inline(self, d: Deferred[Any]) -> Any:
        while self.blocking.pending:
            self.blocking.step(0)
        return self.successResultOf(d)

    def without_read(self, d: Deferred[Any]) -> Any:
        self.assertEqual(self.blocking.pending, [])
        return self.successResultOf(d)

    def reads(self) -> list[Deferred[Any]]:
        return [
            self.repo.find_ref(REF),
            self.repo.get_image(IMG),
            self.repo.list_images(),
            self.repo.chain(TOP.chain_id),
            self.repo.get_rw("c" * 64),
        ]

    def test_second_reads_from_the_cache(self) -> None:
        first = [self.inline(d) for d in self.reads()]
        self.assertEqual(first[0], IMG)
        self.assertEqual(first[1].refs, ((REF, "tag"),))
        self.assertEqual([s.id for s in first[2]], [IMG])
        self.assertEqual(first[3], [BASE, TOP])
        self.assertIsNone(first[4])
        again = [self.without_read(d) for d in self.reads()]
        self.assertEqual(again, first)

    def test_write_empties_its_domain(self) -> None:
        """A reference moved: the next reads see it; a writable layer added leaves the image
        reads cached and answers the layer reads anew."""
        for d in self.reads():
            self.inline(d)
        self.inline(self.repo.remove_ref(REF))
        self.assertIsNone(self.inline(self.repo.find_ref(REF)))
        self.assertEqual(self.inline(self.repo.get_image(IMG)).refs, ())
        self.inline(self.repo.add_rw("c" * 64, IMG, TOP.chain_id, 7))
        self.assertEqual(self.without_read(self.repo.get_image(IMG)).refs, ())
        self.assertEqual(self.inline(self.repo.get_rw("c" * 64)).top_layer, TOP.chain_id)

    def test_read_overlapping_a_write_is_not_kept(self) -> None:
        """A read answered after a delete of the image started keeps nothing."""
        read = self.repo.get_image(IMG)
        gone = self.repo.delete_image(IMG)
        fn, args, d = self.blocking.pending.pop(0)
        row = fn(*args)  # the read sees the image ...
        self.blocking.step(0)  # ... the delete commits first ...
        d.callback(row)  # ... and then the read's answer arrives
        self.assertEqual(self.successResultOf(read).id, IMG)
        self.assertEqual(self.successResultOf(gone), [TOP, BASE])
        self.assertIsNone(self.inline(self.repo.get_image(IMG)))
        self.assertEqual(self.inline(self.repo.list_images()), [])

    def test_read_during_a_write_goes_behind_it(self) -> None:
        for d in self.reads():
            self.inline(d)
        gone = self.repo.delete_image(IMG)
        chain = self.repo.chain(TOP.chain_id)
        self.assertEqual(len(self.blocking.pending), 2)
        self.blocking.step(0)
        self.blocking.step(0)
        self.assertEqual(self.successResultOf(gone), [TOP, BASE])
        self.failureResultOf(chain, LookupError)

    def test_missing_layer_in_a_chain(self) -> None:
        self.failureResultOf(
            self.inline_failure(self.repo.chain("sha256:" + "9" * 64)), LookupError
        )

    def inline_failure(self, d: Deferred[Any]) -> Deferred[Any]:
        while self.blocking.pending:
            self.blocking.step(0)
        return d


class RewarmTests(SynchronousTestCase):
    """After a write of the images, the reads clients made lately are read again in one DB
    call in a later turn, so the next list or inspect needs no round trip; an answer read while
    another write ran is not kept."""

    def setUp(self) -> None:
        self.blocking = QueuedBlocking()
        self.db = Database(make_engine(None), self.blocking)  # type: ignore[arg-type]  # QueuedBlocking stands in for the DB thread's Blocking
        self.db.run_sync(migrate.upgrade)
        self.addCleanup(self.db.close)
        self.later: list[Any] = []
        self.repo = ImageRepository(self.db, later=self.later.append)
        for layer in (BASE, TOP):
            self.inline(self.repo.add_layer(layer))
        self.inline(self.repo.add_image(IMG, b"{}", TOP.chain_id, 30, 1))
        self.inline(self.repo.set_ref(REF, "tag", IMG, 5))
        self.later.clear()

    def inline(self, d: Deferred[Any]) -> Any:
        while self.blocking.pending:
            self.blocking.step(0)
        return self.successResultOf(d)

    def hot_reads(self) -> list[Deferred[Any]]:
        return [
            self.repo.find_ref(REF),
            self.repo.get_image(IMG),
            self.repo.list_images(),
            self.repo.chain(TOP.chain_id),
        ]

    def test_reads_after_a_write_are_warm(self) -> None:
        for d in self.hot_reads():
            self.inline(d)
        self.inline(self.repo.set_ref("docker.io/library/y:1", "tag", IMG, 6))
        self.assertEqual(len(self.later), 1)
        self.assertEqual(self.blocking.pending, [])  # nothing read in the write's own turn
        self.later.pop()()
        self.assertEqual(len(self.blocking.pending), 1)  # all of them in one DB call
        self.blocking.step(0)
        answers = [d for d in self.hot_reads()]
        self.assertEqual(self.blocking.pending, [])  # answered from the cache
        image = self.successResultOf(answers[1])
        self.assertIn(("docker.io/library/y:1", "tag"), image.refs)  # the write's effect
        self.assertEqual(self.successResultOf(answers[3]), [BASE, TOP])

    def test_a_write_during_the_rewarm_discards_it(self) -> None:
        for d in self.hot_reads():
            self.inline(d)
        self.inline(self.repo.set_ref("docker.io/library/y:1", "tag", IMG, 6))
        self.later.pop()()
        removing = self.repo.remove_ref("docker.io/library/y:1")  # queued behind the rewarm
        self.blocking.step(0)  # the rewarm answers, but a write has begun: nothing kept
        self.inline(removing)
        self.assertEqual(len(self.later), 1)  # the write asks for another rewarm
        d = self.repo.get_image(IMG)
        self.assertEqual(len(self.blocking.pending), 1)  # not cached: read anew
        self.assertNotIn(("docker.io/library/y:1", "tag"), self.inline(d).refs)
