"""Alembic revisions: sequential, readable ids; batch mode for SQLite."""
