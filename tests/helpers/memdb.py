"""The in-memory database of unit and component tests."""

from __future__ import annotations

from pyd.core.seams import InlineBlocking
from pyd.state import migrate
from pyd.state.db import Database, make_engine
from pyd.state.models import Base


def memory_db(*, alembic: bool = False) -> Database:
    """SQLite in memory on inline blocking, with the schema of record: made from the models, or
    with C{alembic} by running the migrations (tests/unit/test_migrations.py proves them equal)."""
    db = Database(make_engine(None), InlineBlocking())
    if alembic:
        db.run_sync(migrate.upgrade)
    else:
        Base.metadata.create_all(db.engine)
    return db
