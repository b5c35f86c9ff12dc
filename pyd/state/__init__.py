"""State layer: SQLite through SQLAlchemy 2; the schema evolves only through Alembic."""
