"""The statements run on SQLite's own cursor (L{pyd.state.db.DriverStatement}: a volume's insert
and deletion, an event's insert) store and return exactly what SQLAlchemy Core's execution of the
same statements does: the same text in the JSON columns, the same integers for booleans, the
same records read back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, text
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import Conflict
from pyd.core.records import Volume
from pyd.state import events as events_mod
from pyd.state import volumes as volumes_mod
from pyd.state.events import EventRepository
from pyd.state.models import ContainerRow, ContainerVolumeRow, EventRow, VolumeRow
from pyd.state.volumes import VolumeRepository
from tests.helpers.memdb import memory_db

VOLUMES = [
    Volume(
        name="plain",
        driver="local",
        mountpoint="/v/plain/_data",
        created=1700000000,
        labels=None,
        options=None,
    ),
    Volume(
        name="full",
        driver="local",
        mountpoint="/v/full/_data",
        created=1700000001,
        labels={"a": "1", "é": "ü\u2028"},
        options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"},
        anonymous=True,
        bind_root="/srv",
        bind_subpath="x/y",
    ),
    Volume(name="empty", driver="local", mountpoint="/m", created=0, labels={}, options={}),
]


def _stored(conn: Any, table: str, key: str, value: str) -> list[tuple[Any, ...]]:
    """Each column's stored value and SQLite type, as SQLite holds them."""
    cols = [r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({table})")]
    sel = ", ".join(f"{c}, typeof({c})" for c in cols if c != "id")
    return [
        tuple(r)
        for r in conn.execute(text(f"SELECT {sel} FROM {table} WHERE {key} = :v"), {"v": value})
    ]


class VolumeStatementTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.core = memory_db(alembic=True)
        self.fast = memory_db(alembic=True)
        self.addCleanup(self.core.close)
        self.addCleanup(self.fast.close)

    def test_insert_stores_what_core_stores(self) -> None:
        repo = VolumeRepository(self.fast)
        for vol in VOLUMES:
            stored, made = self.successResultOf(repo.get_or_add(vol))
            self.assertEqual((stored, made), (vol, True))
            values = {
                "name": vol.name, "driver": vol.driver, "mountpoint": vol.mountpoint,
                "created": vol.created, "labels": vol.labels, "options": vol.options,
                "anonymous": vol.anonymous, "bind_root": vol.bind_root,
                "bind_subpath": vol.bind_subpath,
            }  # fmt: skip
            self.core.run_sync(lambda conn, v=values: conn.execute(insert(VolumeRow), v))
            core = self.core.run_sync(lambda conn, n=vol.name: _stored(conn, "volumes", "name", n))
            fast = self.fast.run_sync(lambda conn, n=vol.name: _stored(conn, "volumes", "name", n))
            self.assertEqual(fast, core)
            self.assertEqual(len(fast), 1)
        # read back through Core (a fresh repository reads the table)
        self.assertEqual(
            sorted(self.successResultOf(VolumeRepository(self.fast).all()), key=lambda v: v.name),
            sorted(VOLUMES, key=lambda v: v.name),
        )
        # an existing name is not inserted again: the stored row comes back
        again = Volume(
            name="full", driver="local", mountpoint="/other", created=5, labels=None, options=None
        )
        self.assertEqual(self.successResultOf(repo.get_or_add(again)), (VOLUMES[1], False))

    def test_delete_returns_the_record(self) -> None:
        repo = VolumeRepository(self.fast)
        for vol in VOLUMES:
            self.successResultOf(repo.get_or_add(vol))
        fresh = VolumeRepository(self.fast)  # no mirror: the returned row is all there is
        for vol in VOLUMES:
            self.assertEqual(self.successResultOf(fresh.delete(vol.name)), vol)
        self.assertIsNone(self.successResultOf(fresh.delete("plain")))
        rows = self.fast.run_sync(lambda conn: conn.execute(select(VolumeRow)).all())
        self.assertEqual(rows, [])

    def test_delete_in_use_is_conflict_and_changes_nothing(self) -> None:
        repo = VolumeRepository(self.fast)
        self.successResultOf(repo.get_or_add(VOLUMES[0]))
        self.fast.run_sync(
            lambda conn: conn.execute(
                insert(ContainerRow).values(
                    id="c" * 64, name="/c", image_id="sha256:" + "0" * 64, image_ref="i",
                    created=0, status="created", config={}, host_config={}, state={},
                    network_settings={}, mounts=[], restart_count=0, extra={},
                )
            )
        )  # fmt: skip
        self.successResultOf(repo.add_uses("c" * 64, [("plain", "/data")]))
        f = self.failureResultOf(repo.delete("plain"), Conflict)
        self.assertEqual(str(f.value), f"remove plain: volume is in use - [{'c' * 64}]")
        self.assertEqual(self.successResultOf(VolumeRepository(self.fast).get("plain")), VOLUMES[0])
        uses = self.fast.run_sync(lambda conn: conn.execute(select(ContainerVolumeRow)).all())
        self.assertEqual(len(uses), 1)

    def test_failed_statement_rolls_back(self) -> None:
        """A transaction whose driver statement ran and whose later step failed keeps nothing."""
        repo = VolumeRepository(self.fast)

        def boom(conn: Any) -> None:
            raise RuntimeError("after the insert")

        self.failureResultOf(repo.get_or_add(VOLUMES[0], boom), RuntimeError)
        rows = self.fast.run_sync(lambda conn: conn.execute(select(VolumeRow)).all())
        self.assertEqual(rows, [])


class EventStatementTests(SynchronousTestCase):
    def test_one_event_stores_what_core_stores(self) -> None:
        core, fast = memory_db(alembic=True), memory_db(alembic=True)
        self.addCleanup(core.close)
        self.addCleanup(fast.close)
        row = events_mod._row("volume", "create", "v1", {"driver": "local", "k": "é"}, "local", 7)
        ids = fast.run_sync(lambda conn: events_mod._store(conn, [dict(row)], None))
        ids += fast.run_sync(lambda conn: events_mod._store(conn, [dict(row)], None))
        self.assertEqual(ids, [1, 2])
        core.run_sync(lambda conn: conn.execute(insert(EventRow), dict(row)))
        self.assertEqual(
            fast.run_sync(lambda conn: _stored(conn, "events", "id", "1")),
            core.run_sync(lambda conn: _stored(conn, "events", "id", "1")),
        )
        got = self.successResultOf(EventRepository(fast).between(0, 10))
        self.assertEqual(
            [(e.id, e.actor_id, e.attributes) for e in got[:1]], [(1, "v1", row["attributes"])]
        )

    def test_module_statements_are_driver_statements(self) -> None:
        """The hot statements really take the driver's path (the tests above would pass on
        Core's too)."""
        self.assertIn("INSERT INTO volumes", volumes_mod._INSERT_NEW_FAST.sql)
        self.assertIn("DELETE FROM volumes", volumes_mod._DELETE_FAST.sql)
        self.assertIn("INSERT INTO events", events_mod._INSERT_ONE.sql)


class DriverErrorTests(SynchronousTestCase):
    def test_integrity_error_is_conflict(self) -> None:
        """A driver statement's constraint failure is the same Conflict as Core's."""
        db = memory_db(alembic=True)
        self.addCleanup(db.close)
        values = {
            "name": "x", "driver": "local", "mountpoint": None, "created": 0, "labels": None,
            "options": None, "anonymous": False, "bind_root": "", "bind_subpath": "",
        }  # fmt: skip
        d = db.transaction(lambda conn: volumes_mod._INSERT_NEW_FAST.execute(conn, values))
        f = self.failureResultOf(d, Conflict)
        self.assertIn("NOT NULL constraint failed: volumes.mountpoint", str(f.value))
        self.assertEqual(db.run_sync(lambda conn: conn.execute(select(VolumeRow)).all()), [])
