"""Networks: configuration-only networks and those created from one (dockerd's --config-only,
--config-from), and whether a network has IPv4 (API 1.48's EnableIPv4).

Revision ID: 0005_network_config_only
Revises: 0004_endpoint_ipv6
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_network_config_only"
down_revision = "0004_endpoint_ipv6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("networks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("config_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("config_from", sa.String(length=255), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("enable_ipv4", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("networks", schema=None) as batch_op:
        batch_op.drop_column("enable_ipv4")
        batch_op.drop_column("config_from")
        batch_op.drop_column("config_only")
