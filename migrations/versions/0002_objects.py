"""Images, layers, containers, networks, endpoints and volumes.

Revision ID: 0002_objects
Revises: 0001_daemon_and_events
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_objects"
down_revision = "0001_daemon_and_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "containers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("image_id", sa.String(length=71), nullable=False),
        sa.Column("image_ref", sa.String(length=512), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("host_config", sa.JSON(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("network_settings", sa.JSON(), nullable=False),
        sa.Column("mounts", sa.JSON(), nullable=False),
        sa.Column("restart_count", sa.Integer(), nullable=False),
        sa.Column("layer_id", sa.String(length=64), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_containers")),
        sa.UniqueConstraint("name", name=op.f("uq_containers_name")),
    )
    with op.batch_alter_table("containers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_containers_image_id"), ["image_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_containers_status"), ["status"], unique=False)

    op.create_table(
        "layers",
        sa.Column("chain_id", sa.String(length=71), nullable=False),
        sa.Column("diff_id", sa.String(length=71), nullable=False),
        sa.Column("parent", sa.String(length=71), nullable=True),
        sa.Column("cache_id", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("compressed_digest", sa.String(length=71), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent"], ["layers.chain_id"], name=op.f("fk_layers_parent_layers")
        ),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_layers")),
        sa.UniqueConstraint("cache_id", name=op.f("uq_layers_cache_id")),
    )
    op.create_table(
        "networks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("driver", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("attachable", sa.Boolean(), nullable=False),
        sa.Column("enable_ipv6", sa.Boolean(), nullable=False),
        sa.Column("ipam", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("bridge", sa.String(length=15), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_networks")),
        sa.UniqueConstraint("bridge", name=op.f("uq_networks_bridge")),
        sa.UniqueConstraint("name", name=op.f("uq_networks_name")),
    )
    op.create_table(
        "volumes",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("driver", sa.String(length=64), nullable=False),
        sa.Column("mountpoint", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_volumes")),
    )
    op.create_table(
        "container_volumes",
        sa.Column("container_id", sa.String(length=64), nullable=False),
        sa.Column("volume_name", sa.String(length=255), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["containers.id"],
            name=op.f("fk_container_volumes_container_id_containers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["volume_name"],
            ["volumes.name"],
            name=op.f("fk_container_volumes_volume_name_volumes"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint(
            "container_id", "volume_name", "destination", name=op.f("pk_container_volumes")
        ),
    )
    with op.batch_alter_table("container_volumes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_container_volumes_volume_name"), ["volume_name"], unique=False
        )

    op.create_table(
        "endpoints",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("network_id", sa.String(length=64), nullable=False),
        sa.Column("container_id", sa.String(length=64), nullable=False),
        sa.Column("ipv4", sa.String(length=18), nullable=True),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"],
            ["containers.id"],
            name=op.f("fk_endpoints_container_id_containers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["network_id"], ["networks.id"], name=op.f("fk_endpoints_network_id_networks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoints")),
        sa.UniqueConstraint(
            "network_id", "container_id", name=op.f("uq_endpoints_network_id_container_id")
        ),
        sa.UniqueConstraint("network_id", "ipv4", name=op.f("uq_endpoints_network_id_ipv4")),
    )
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_endpoints_container_id"), ["container_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_endpoints_network_id"), ["network_id"], unique=False)

    op.create_table(
        "images",
        sa.Column("id", sa.String(length=71), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("top_layer", sa.String(length=71), nullable=True),
        sa.Column("parent_id", sa.String(length=71), nullable=True),
        sa.Column("cache_key", sa.String(length=71), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("last_tag_time", sa.BigInteger(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["top_layer"], ["layers.chain_id"], name=op.f("fk_images_top_layer_layers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_cache_key"), ["cache_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "rw_layers",
        sa.Column("container_id", sa.String(length=64), nullable=False),
        sa.Column("image_id", sa.String(length=71), nullable=True),
        sa.Column("top_layer", sa.String(length=71), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["top_layer"], ["layers.chain_id"], name=op.f("fk_rw_layers_top_layer_layers")
        ),
        sa.PrimaryKeyConstraint("container_id", name=op.f("pk_rw_layers")),
    )
    with op.batch_alter_table("rw_layers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rw_layers_image_id"), ["image_id"], unique=False)

    op.create_table(
        "image_refs",
        sa.Column("ref", sa.String(length=512), nullable=False),
        sa.Column("image_id", sa.String(length=71), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_refs_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ref", name=op.f("pk_image_refs")),
    )
    with op.batch_alter_table("image_refs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_refs_image_id"), ["image_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("image_refs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_refs_image_id"))

    op.drop_table("image_refs")
    with op.batch_alter_table("rw_layers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rw_layers_image_id"))

    op.drop_table("rw_layers")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_parent_id"))
        batch_op.drop_index(batch_op.f("ix_images_cache_key"))

    op.drop_table("images")
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_endpoints_network_id"))
        batch_op.drop_index(batch_op.f("ix_endpoints_container_id"))

    op.drop_table("endpoints")
    with op.batch_alter_table("container_volumes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_container_volumes_volume_name"))

    op.drop_table("container_volumes")
    op.drop_table("volumes")
    op.drop_table("networks")
    op.drop_table("layers")
    with op.batch_alter_table("containers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_containers_status"))
        batch_op.drop_index(batch_op.f("ix_containers_image_id"))

    op.drop_table("containers")
