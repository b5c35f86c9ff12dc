"""pyd's Alembic migrations, installed as the C{pyd_migrations} package."""
