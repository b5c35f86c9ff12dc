"""The Alembic revisions produce exactly the models' schema and upgrade every earlier state."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from twisted.trial.unittest import SynchronousTestCase

from pyd.state import migrate
from pyd.state.db import make_engine
from pyd.state.models import Base


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _dump(engine: Engine) -> dict[str, object]:
    insp = inspect(engine)
    out: dict[str, object] = {}
    for table in sorted(insp.get_table_names()):
        if table == "alembic_version":
            continue
        out[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)
            ],
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], str(f.get("options")))
                for f in insp.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "uniques": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
        }
    return out


class MigrationTests(SynchronousTestCase):
    """Schema evolution through Alembic only."""

    def test_head_matches_models(self) -> None:
        """Upgrading an empty database to head gives exactly the models' schema."""
        engine = make_engine(None)
        with engine.begin() as conn:
            migrate.upgrade(conn)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        self.assertEqual(diff, [])

    def test_revisions_are_linear_and_readable(self) -> None:
        """One head, sequential numbered revision ids."""
        revs = _revisions()
        self.assertGreaterEqual(len(revs), 2)
        for i, rev in enumerate(revs, start=1):
            self.assertTrue(rev.startswith(f"{i:04d}_"), rev)
        self.assertEqual(migrate.head_revision(), revs[-1])

    def test_upgrade_from_every_revision_with_data(self) -> None:
        """A database at each earlier revision, holding data, upgrades to head and keeps it,
        ending with the same schema as a fresh one."""
        fresh = make_engine(None)
        with fresh.begin() as conn:
            migrate.upgrade(conn)
        for rev in _revisions()[:-1]:
            engine = make_engine(None)
            with engine.begin() as conn:
                migrate.upgrade(conn, rev)
                conn.execute(text("INSERT INTO daemon_meta (key, value) VALUES ('daemon_id', 'X')"))
                conn.execute(
                    text(
                        "INSERT INTO events (time_nano, type, action, actor_id, attributes, scope) "
                        "VALUES (1, 'container', 'start', 'abc', '{}', 'local')"
                    )
                )
            with engine.begin() as conn:
                self.assertEqual(migrate.current_revision(conn), rev)
                migrate.upgrade(conn)
                self.assertEqual(migrate.current_revision(conn), migrate.head_revision())
                self.assertEqual(
                    conn.execute(
                        text("SELECT value FROM daemon_meta WHERE key='daemon_id'")
                    ).scalar_one(),
                    "X",
                )
                self.assertEqual(conn.execute(text("SELECT count(*) FROM events")).scalar_one(), 1)
            self.assertEqual(_dump(engine), _dump(fresh))

    def test_foreign_keys_enforced(self) -> None:
        """Every connection runs with foreign keys on and WAL (file databases)."""
        engine = make_engine(None)
        with engine.connect() as conn:
            self.assertEqual(conn.execute(text("PRAGMA foreign_keys")).scalar_one(), 1)
