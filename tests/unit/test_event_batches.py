"""EventRepository writes the events emitted while a batch is on the DB thread together, in one
transaction, and answers each emitter in order with the id the database gave it (issue 21: a
bulk rm or run paid one DB round trip per event)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.records import Event
from pyd.state import migrate
from pyd.state.db import Database, make_engine
from pyd.state.events import EventRepository
from tests.unit.test_volume_repo_cache import QueuedBlocking


class QueuedRepoCase(SynchronousTestCase):
    """An event repository over a migrated in-memory database whose DB-thread calls wait in
    C{self.blocking} until the test runs them."""

    def setUp(self) -> None:
        self.blocking = QueuedBlocking()
        self.db = Database(make_engine(None), self.blocking)  # type: ignore[arg-type]  # QueuedBlocking stands in for the DB thread's Blocking
        self.db.run_sync(migrate.upgrade)
        self.addCleanup(self.db.close)
        self.repo = EventRepository(self.db)


class EventBatchTests(QueuedRepoCase):
    def setUp(self) -> None:
        super().setUp()
        self.begins = 0
        event.listen(Engine, "begin", self._begin)
        self.addCleanup(event.remove, Engine, "begin", self._begin)

    def _begin(self, conn: Any) -> None:
        self.begins += 1

    def emit(self, action: str, t: int) -> Deferred[Event]:
        return self.repo.add("container", action, "c" * 64, {"name": action}, "local", t)

    def test_events_emitted_during_a_write_share_the_next_transaction(self) -> None:
        """The first event goes alone; the four emitted while it is on the DB thread go in one
        transaction after it; every Deferred fires with its own event and ids ascend in
        emission order."""
        fired: list[Event] = []
        first = self.emit("create", 1)
        first.addCallback(fired.append)
        self.assertEqual(len(self.blocking.pending), 1)
        rest = [self.emit(f"a{i}", 2 + i) for i in range(4)]
        for d in rest:
            d.addCallback(fired.append)
        self.assertEqual(len(self.blocking.pending), 1)  # they wait for the first batch
        self.blocking.step(0)
        self.assertEqual([e.action for e in fired], ["create"])
        self.assertEqual(len(self.blocking.pending), 1)  # the four, as one call
        self.blocking.step(0)
        self.assertEqual(self.blocking.pending, [])
        self.assertEqual([e.action for e in fired], ["create", "a0", "a1", "a2", "a3"])
        ids = [e.id for e in fired]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), 5)
        self.assertEqual(self.begins, 2)
        history = self.repo.between(0, None)
        self.blocking.step(0)
        got = self.successResultOf(history)
        self.assertEqual(
            [(e.id, e.action, e.time_nano) for e in got],
            [(e.id, e.action, e.time_nano) for e in fired],
        )
        self.assertEqual(got[1].attributes, {"name": "a0"})

    def test_retention_keeps_the_newest(self) -> None:
        """Once 100 events are stored since the last pruning (in batches as one by one), the
        write drops all but the newest C{retention}; until then nothing is dropped."""
        self.repo.retention = 5

        def stored() -> list[int]:
            history = self.repo.between(0, None)
            self.blocking.step(0)
            return [e.id for e in self.successResultOf(history)]

        emitted = [self.emit(f"a{i}", i) for i in range(150)]  # 1, then a batch of 149
        while self.blocking.pending:
            self.blocking.step(0)
        ids = [self.successResultOf(d).id for d in emitted]
        self.assertEqual(stored(), ids[-5:])
        for i in range(150, 249):  # one by one: 99 since the pruning, none dropped
            d = self.emit(f"a{i}", i)
            self.blocking.step(0)
            ids.append(self.successResultOf(d).id)
        self.assertEqual(stored(), ids[145:])
        d = self.emit("a249", 249)  # the 100th
        self.blocking.step(0)
        ids.append(self.successResultOf(d).id)
        self.assertEqual(stored(), ids[-5:])

    def test_a_failed_batch_fails_each_of_its_events_and_the_next_batch_still_goes(self) -> None:
        """A write that fails errbacks every event of its batch; events emitted after it are
        written by the next batch."""
        first = self.emit("create", 1)
        _fn, _args, d = self.blocking.pending.pop(0)
        d.errback(RuntimeError("disk full"))
        self.failureResultOf(first, RuntimeError)
        later = self.emit("start", 2)
        self.blocking.step(0)
        self.assertEqual(self.successResultOf(later).action, "start")


class StagedEventOrderTests(QueuedRepoCase):
    """An event staged into another transaction (EventSink.stage: a volume's create) is never
    stored ahead of events emitted before it that still wait for their batch."""

    def setUp(self) -> None:
        from pyd.engine.events import EventService
        from pyd.state.volumes import VolumeRepository

        super().setUp()
        self.clock: Any = type("C", (), {"seconds": staticmethod(lambda: 1.0)})()
        self.events = EventService(self.repo, self.clock)
        self.volumes = VolumeRepository(self.db)
        self.live: list[Event] = []
        self.events.subscribe(self.live.append)

    def _create(self, name: str) -> Deferred[Any]:
        from pyd.core.records import Volume

        vol = Volume(name=name, driver="local", mountpoint="/v", created=1, labels=None,
                     options=None, anonymous=False, bind_root="", bind_subpath="")  # fmt: skip
        staged = self.events.stage("volume", "create", name, {"driver": "local"})
        d = self.volumes.get_or_add(vol, staged.write)
        return d.addCallback(lambda _: staged.publish())

    def _drain(self) -> None:
        while self.blocking.pending:
            self.blocking.step(0)

    def _stored(self) -> list[Event]:
        d = self.repo.between(0, None)
        self._drain()
        return self.successResultOf(d)

    def test_nothing_waiting_stored_with_the_row(self) -> None:
        self._create("v1")
        self.assertEqual(len(self.blocking.pending), 1)  # one transaction: the row and its event
        self._drain()
        self.assertEqual([(e.action, e.actor_id) for e in self.live], [("create", "v1")])
        self.assertEqual(self._stored(), self.live)

    def test_after_events_that_wait_for_their_batch(self) -> None:
        self.events.emit("container", "start", "a" * 64)  # on the DB thread
        self.events.emit("container", "die", "a" * 64)  # waits for the next batch
        self._create("v2")
        self._drain()
        self._drain()
        self.assertEqual([e.action for e in self.live], ["start", "die", "create"])
        stored = self._stored()
        self.assertEqual([e.action for e in stored], ["start", "die", "create"])
        self.assertEqual([e.id for e in stored], sorted(e.id for e in stored))
