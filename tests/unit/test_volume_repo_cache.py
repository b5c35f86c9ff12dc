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
        self.repo._known.clear()  # the create kept its record: this read goes to the database
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

    def test_created_record_kept(self) -> None:
        """The inspect that follows a create needs no database read."""
        self.blocking.inline = True
        self.successResultOf(self.repo.get_or_add(vol("c")))
        self.blocking.inline = False
        got = self.repo.get("c")
        self.assertEqual(self.blocking.pending, [])
        self.assertEqual(self.successResultOf(got), vol("c"))

    def test_create_overlapping_delete_not_kept(self) -> None:
        """A create answered after a delete of the same name started keeps nothing: the
        delete's commit may follow the create's."""
        made = self.repo.get_or_add(vol("d"))
        gone = self.repo.delete("d")
        self.blocking.step(0)  # the create commits, its answer arrives while the delete waits
        self.assertEqual(self.successResultOf(made), (vol("d"), True))
        self.blocking.step(0)
        self.assertEqual(self.successResultOf(gone), vol("d"))
        self.assertIsNone(self.get("d"))

    def test_listed_records_kept(self) -> None:
        """Every volume a list read returns is kept, unless a write ran meanwhile."""
        self.blocking.inline = True
        for name in ("e", "f"):
            self.successResultOf(self.repo.get_or_add(vol(name)))
        self.repo._known.clear()
        self.assertEqual(self.successResultOf(self.repo.all()), [vol("e"), vol("f")])
        self.blocking.inline = False
        got = self.repo.get("f")
        self.assertEqual(self.blocking.pending, [])
        self.assertEqual(self.successResultOf(got), vol("f"))
        self.repo._known.clear()
        listed = self.repo.all()
        gone = self.repo.delete("e")
        fn, args, d = self.blocking.pending.pop(0)
        rows = fn(*args)  # the list sees "e" ...
        self.blocking.step(0)  # ... the delete commits first ...
        d.callback(rows)
        self.assertEqual(self.successResultOf(gone), vol("e"))
        self.assertEqual(self.successResultOf(listed), [vol("e"), vol("f")])
        self.assertIsNone(self.get("e"))
