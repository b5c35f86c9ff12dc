"""Alembic environment: runs on the connection pyd hands over (never opens its own)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

connection = context.config.attributes.get("connection")

if connection is None:
    # Command-line use (`alembic -x url=sqlite:///...`), for developers only.
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///pyd.db")
    engine = create_engine(url)
    with engine.begin() as conn:
        context.configure(connection=conn, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
