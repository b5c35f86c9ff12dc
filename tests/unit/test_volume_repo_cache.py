"""VolumeRepository's mirror of the volumes table answers reads without a database round trip,
and never with a volume that a finished write removed (or without one it added), even when reads
and writes overlap on the database thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import OperationalError
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import Conflict
from pyd.core.records import Volume
from pyd.state import migrate
from pyd.state.db import Database, make_engine
from pyd.state.models import ContainerRow, ContainerVolumeRow
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

    def inline(self, d: Deferred[Any]) -> Any:
        """Run what C{d} waits for on the DB thread now; its result."""
        while self.blocking.pending:
            self.blocking.step(0)
        return self.successResultOf(d)

    def add(self, *names: str) -> None:
        for name in names:
            self.assertEqual(self.inline(self.repo.get_or_add(vol(name))), (vol(name), True))

    def mirrored(self) -> list[Volume]:
        """Install the mirror (a list read with no write overlapping)."""
        vols: list[Volume] = self.inline(self.repo.all())
        self.assertEqual(self.blocking.pending, [])
        return vols

    def answered_without_read(self, d: Deferred[Any]) -> Any:
        self.assertEqual(self.blocking.pending, [])
        return self.successResultOf(d)

    def test_reads_answered_from_the_mirror(self) -> None:
        """Once listed, inspect, list and the lookup of a free name read nothing, and every
        write keeps the mirror in step."""
        self.add("a", "b")
        self.assertEqual(self.mirrored(), [vol("a"), vol("b")])
        self.assertEqual(self.answered_without_read(self.repo.get("a")), vol("a"))
        self.assertIsNone(self.answered_without_read(self.repo.get("free")))
        self.add("c")
        self.assertEqual(self.answered_without_read(self.repo.get("c")), vol("c"))
        self.assertEqual(self.inline(self.repo.delete("a")), vol("a"))
        self.assertIsNone(self.answered_without_read(self.repo.get("a")))
        self.assertEqual(self.answered_without_read(self.repo.all()), [vol("b"), vol("c")])

    def test_existing_name_not_added(self) -> None:
        self.add("a")
        other = Volume("a", "local", "/elsewhere", 2, None, None)
        self.assertEqual(self.inline(self.repo.get_or_add(other)), (vol("a"), False))
        self.mirrored()
        self.assertEqual(self.answered_without_read(self.repo.get("a")), vol("a"))

    def test_get_before_any_list_reads_the_table(self) -> None:
        self.add("a")
        self.assertEqual(self.inline(self.repo.get("a")), vol("a"))
        self.assertEqual(self.answered_without_read(self.repo.get("a")), vol("a"))

    def test_read_of_a_name_being_written_follows_the_write(self) -> None:
        """A read of a name whose write is in flight goes to the database, behind the write."""
        self.add("a")
        self.mirrored()
        gone = self.repo.delete("a")
        read = self.repo.get("a")
        self.assertEqual(len(self.blocking.pending), 2)
        self.blocking.step(0)
        self.blocking.step(0)
        self.assertEqual(self.successResultOf(gone), vol("a"))
        self.assertIsNone(self.successResultOf(read))

    def test_list_overlapping_a_write_installs_nothing(self) -> None:
        """A list read whose answer arrives after a delete committed is not kept."""
        self.add("e", "f")
        listed = self.repo.all()
        gone = self.repo.delete("e")
        fn, args, d = self.blocking.pending.pop(0)
        rows = fn(*args)  # the list sees "e" ...
        self.blocking.step(0)  # ... the delete commits first ...
        d.callback(rows)
        self.assertEqual(self.successResultOf(gone), vol("e"))
        self.assertEqual(self.successResultOf(listed), [vol("e"), vol("f")])
        self.assertIsNone(self.inline(self.repo.get("e")))
        self.assertEqual(self.answered_without_read(self.repo.all()), [vol("f")])

    def test_create_overlapping_delete(self) -> None:
        """A create answered while a delete of the same name waits: the delete's commit follows
        the create's, and the mirror says so."""
        self.mirrored()
        made = self.repo.get_or_add(vol("d"))
        gone = self.repo.delete("d")
        self.blocking.step(0)
        self.assertEqual(self.successResultOf(made), (vol("d"), True))
        self.blocking.step(0)
        self.assertEqual(self.successResultOf(gone), vol("d"))
        self.assertIsNone(self.answered_without_read(self.repo.get("d")))

    def test_in_use_refusal_keeps_the_mirror(self) -> None:
        self.add("u")
        self.mirrored()
        cid = "c" * 64

        def use(conn: Any) -> None:
            conn.execute(
                insert(ContainerRow).values(
                    id=cid, name="/c", image_id="i", image_ref="i", created=1, status="created",
                    config={}, host_config={}, state={},
                )
            )  # fmt: skip
            conn.execute(
                insert(ContainerVolumeRow).values(
                    container_id=cid, volume_name="u", destination="/d"
                )
            )

        self.db.run_sync(use)
        f = self.failureResultOf(self.inline_failure(self.repo.delete("u")), Conflict)
        self.assertEqual(str(f.value), f"remove u: volume is in use - [{cid}]")
        self.assertEqual(self.answered_without_read(self.repo.get("u")), vol("u"))

    def inline_failure(self, d: Deferred[Any]) -> Deferred[Any]:
        while self.blocking.pending:
            self.blocking.step(0)
        return d

    def test_failed_write_drops_the_mirror(self) -> None:
        """A write that failed for another reason leaves the mirror unknown: the next reads go
        to the database and install it again."""
        self.add("a")
        self.mirrored()
        real = self.db.transaction

        def broken(fn: Callable[..., Any]) -> Deferred[Any]:
            def thd(conn: Any) -> Any:
                fn(conn)
                raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

            return real(thd)

        self.db.transaction = broken  # type: ignore[method-assign]  # the commit fails after the insert ran
        self.failureResultOf(self.inline_failure(self.repo.get_or_add(vol("b"))), OperationalError)
        self.db.transaction = real  # type: ignore[method-assign]
        got = self.repo.get("a")
        self.assertEqual(len(self.blocking.pending), 1)
        self.assertEqual(self.inline(got), vol("a"))
        self.assertEqual(self.answered_without_read(self.repo.all()), [vol("a")])
