"""Volumes: the allowed-bind-paths directory an operator's bind volume is confined to.

Revision ID: 0003_volume_bind_root
Revises: 0002_objects
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_volume_bind_root"
down_revision = "0002_objects"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("volumes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bind_root", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("bind_subpath", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("volumes", schema=None) as batch_op:
        batch_op.drop_column("bind_subpath")
        batch_op.drop_column("bind_root")
