"""VolumeRepository's read-through cache of volume records never answers with a volume that a
finished write removed, even when reads and writes overlap on the database thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.records import Volume
from pyd.state import migrate
from pyd.state.db import Database, make_engine
from pyd.state.volumes import VolumeRepository


class QueuedBlocking:
    """A Blocking whose calls wait until the test runs them (the DB thread, one call at a time,
    in any order the test picks)."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []
        self.inline = False

    def run(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append((fn, args, d))
        if self.inline:
            self.step(-1)
        return d

    def step(self, i: int = 0) -> None:
        fn, args, d = self.pending.pop(i)
        try:
            d.callback(fn(*args))
        except Exception as e:
            d.errback(e)


def vol(name: str) -> Volume:
    return Volume(name, "local", f"/v/{name}/_data", 1, None, None)


class VolumeCacheTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.blocking = QueuedBlocking()
        self.db = Database(make_engine(None), self.blocking)  # type: ignore[arg-type]  # QueuedBlocking stands in for the DB thread's Blocking
        self.db.run_sync(migrate.upgrade)
        self.addCleanup(self.db.close)
        self.repo = VolumeRepository(self.db)

    def get(self, name: str) -> Volume | None:
        self.blocking.inline = True
        try:
            got: Volume | None = self.successResultOf(self.repo.get(name))
            return got
        finally:
            self.blocking.inline = False

    def test_delete_forgets(self) -> None:
        self.blocking.inline = True
        self.successResultOf(self.repo.get_or_add(vol("a")))
        self.assertEqual(self.get("a"), vol("a"))
        self.assertEqual(self.get("a"), vol("a"))  # from the cache
        self.blocking.inline = True
        self.assertEqual(self.successResultOf(self.repo.delete("a")), vol("a"))
        self.assertIsNone(self.get("a"))
        self.blocking.inline = True
        self.successResultOf(self.repo.get_or_add(vol("a")))
        self.assertEqual(self.get("a"), vol("a"))

    def test_read_before_delete_answered_after_is_not_kept(self) -> None:
        self.blocking.inline = True
        self.successResultOf(self.repo.get_or_add(vol("a")))
        self.blocking.inline = False
        read = self.repo.get("a")  # queued: reads the row before the delete runs
        gone = self.repo.delete("a")
        fn, args, d = self.blocking.pending.pop(0)
        row = fn(*args)  # the read sees the row on the DB thread ...
        self.blocking.step(0)  # ... the delete commits and is answered ...
        d.callback(row)  # ... and only then the read's answer arrives
        self.assertEqual(self.successResultOf(read), vol("a"))
        self.assertEqual(self.successResultOf(gone), vol("a"))
        self.assertIsNone(self.get("a"))

    def test_read_during_create_is_not_kept_stale(self) -> None:
        self.blocking.inline = False
        read = self.repo.get("b")
        made = self.repo.get_or_add(vol("b"))
        self.blocking.step(0)  # the read finds nothing
        self.assertIsNone(self.successResultOf(read))
        self.blocking.step(0)
        self.assertEqual(self.successResultOf(made), (vol("b"), True))
        self.assertEqual(self.get("b"), vol("b"))
