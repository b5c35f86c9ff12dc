"""Endpoints: the IPv6 address of a dual-stack endpoint, unique per network as the IPv4 one.

Revision ID: 0004_endpoint_ipv6
Revises: 0003_volume_bind_root
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_endpoint_ipv6"
down_revision = "0003_volume_bind_root"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ipv6", sa.String(length=39), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_endpoints_network_id_ipv6"), ["network_id", "ipv6"]
        )


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_endpoints_network_id_ipv6"), type_="unique")
        batch_op.drop_column("ipv6")
