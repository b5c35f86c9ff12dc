"""The schema of record (layer: state).

SQLAlchemy Core tables (no ORM: the daemon never loads sqlalchemy.orm, ~7 MB of RSS). Alembic
revisions in C{migrations/versions} must produce exactly this schema (tests/unit/test_migrations.py compares them). Flexible Docker structures (Config,
HostConfig, State...) live in JSON columns; anything we filter, join or constrain on is a column.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class Rows:
    """A table whose columns read as attributes (C{ContainerRow.name}), and which stands for
    its table in C{select()}, C{insert()}, C{update()} and C{delete()}. The tables below are
    typed C{Any}: SQLAlchemy's stubs know ORM classes and Tables, not such a stand-in."""

    def __init__(self, table: Table, doc: str) -> None:
        self.__table__ = table
        self.__doc__ = doc

    def __clause_element__(self) -> Table:
        """The table, for SQLAlchemy's statement constructors."""
        return self.__table__

    def __getattr__(self, name: str) -> Column[Any]:
        try:
            column: Column[Any] = self.__table__.c[name]
        except KeyError:
            raise AttributeError(name) from None
        return column


class Base:
    """Where Alembic and the tests find the schema (C{Base.metadata})."""

    metadata = metadata


DaemonMeta: Any = Rows(
    Table(
        "daemon_meta",
        metadata,
        Column("key", String(64), primary_key=True),
        Column("value", Text, nullable=False),
    ),
    """Key/value facts about this daemon (its persistent ID, ...).""",
)


EventRow: Any = Rows(
    Table(
        "events",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("time_nano", BigInteger, index=True, nullable=False),
        Column("type", String(32), nullable=False),
        Column("action", String(64), nullable=False),
        Column("actor_id", String(255), nullable=False),
        Column("attributes", JSON, nullable=False),
        Column("scope", String(16), default="local", nullable=False),
    ),
    """The event log behind C{/events}, bounded by a retention count.""",
)


LayerRow: Any = Rows(
    Table(
        "layers",
        metadata,
        Column("chain_id", String(71), primary_key=True),
        Column("diff_id", String(71), nullable=False),
        Column("parent", ForeignKey("layers.chain_id"), nullable=True),
        Column("cache_id", String(64), unique=True, nullable=False),
        Column("size", BigInteger, default=0, nullable=False),
        Column("compressed_digest", String(71), nullable=True),
        Column("created", BigInteger, nullable=False),
    ),
    """An extracted layer, shared by every image whose chain contains it.""",
)


ImageRow: Any = Rows(
    Table(
        "images",
        metadata,
        Column("id", String(71), primary_key=True),
        Column("config", Text, nullable=False),
        Column("top_layer", ForeignKey("layers.chain_id"), nullable=True),
        Column("parent_id", String(71), nullable=True, index=True),
        Column("cache_key", String(71), nullable=True, index=True),
        Column("size", BigInteger, default=0, nullable=False),
        Column("created", BigInteger, nullable=False),
        Column("last_tag_time", BigInteger, nullable=True),
        Column("extra", JSON, default=dict, nullable=False),
    ),
    """An image: its config blob (kept byte for byte, its digest is the id) and its top layer.""",
)


ImageRefRow: Any = Rows(
    Table(
        "image_refs",
        metadata,
        Column("ref", String(512), primary_key=True),
        Column("image_id", ForeignKey("images.id", ondelete="CASCADE"), index=True, nullable=False),
        Column("kind", String(8), nullable=False),  # "tag" or "digest"
        Column("created", BigInteger, nullable=False),
    ),
    """A reference to an image: C{repo:tag} or C{repo@sha256:...} (fully normalised).""",
)


RwLayerRow: Any = Rows(
    Table(
        "rw_layers",
        metadata,
        Column("container_id", String(64), primary_key=True),
        Column("image_id", String(71), nullable=True, index=True),
        Column("top_layer", ForeignKey("layers.chain_id"), nullable=True),
        Column("created", BigInteger, nullable=False),
    ),
    """A container's writable layer; its top_layer keeps the image's layers alive.""",
)


ContainerRow: Any = Rows(
    Table(
        "containers",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("name", String(255), unique=True, nullable=False),
        Column("image_id", String(71), index=True, nullable=False),
        Column("image_ref", String(512), nullable=False),
        Column("created", BigInteger, nullable=False),
        Column("status", String(16), index=True, nullable=False),
        Column("config", JSON, nullable=False),
        Column("host_config", JSON, nullable=False),
        Column("state", JSON, nullable=False),
        Column("network_settings", JSON, default=dict, nullable=False),
        Column("mounts", JSON, default=list, nullable=False),
        Column("restart_count", Integer, default=0, nullable=False),
        Column("layer_id", String(64), nullable=True),
        Column("extra", JSON, default=dict, nullable=False),
    ),
    """A container: Docker's Config/HostConfig as sent, plus its runtime state.""",
)


NetworkRow: Any = Rows(
    Table(
        "networks",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("name", String(255), unique=True, nullable=False),
        Column("driver", String(32), nullable=False),
        Column("scope", String(16), default="local", nullable=False),
        Column("created", BigInteger, nullable=False),
        Column("internal", Boolean, default=False, nullable=False),
        Column("attachable", Boolean, default=False, nullable=False),
        Column("enable_ipv6", Boolean, default=False, nullable=False),
        Column("ipam", JSON, nullable=False),
        Column("options", JSON, default=dict, nullable=False),
        Column("labels", JSON, default=dict, nullable=False),
        Column("bridge", String(15), nullable=True, unique=True),
        Column("config_only", Boolean, default=False, server_default=false(), nullable=False),
        Column("config_from", String(255), default="", server_default="", nullable=False),
        Column("enable_ipv4", Boolean, default=True, server_default=true(), nullable=False),
    ),
    """A network (bridge driver, or the built-in host/none).""",
)


EndpointRow: Any = Rows(
    Table(
        "endpoints",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("network_id", ForeignKey("networks.id"), index=True, nullable=False),
        Column(
            "container_id",
            ForeignKey("containers.id", ondelete="CASCADE"),
            index=True,
            nullable=False,
        ),
        Column("ipv4", String(18), nullable=True),
        Column("mac", String(17), nullable=True),
        Column("aliases", JSON, default=list, nullable=False),
        Column("config", JSON, default=dict, nullable=False),
        Column("ipv6", String(39), nullable=True),
        UniqueConstraint("network_id", "container_id"),
        UniqueConstraint("network_id", "ipv4"),
        UniqueConstraint("network_id", "ipv6"),
    ),
    """A container's attachment to a network; UNIQUE constraints make IPAM double-allocation impossible.""",
)


VolumeRow: Any = Rows(
    Table(
        "volumes",
        metadata,
        Column("name", String(255), primary_key=True),
        Column("driver", String(64), default="local", nullable=False),
        Column("mountpoint", Text, nullable=False),
        Column("created", BigInteger, nullable=False),
        Column("labels", JSON, default=dict, nullable=False),
        Column("options", JSON, default=dict, nullable=False),
        Column("anonymous", Boolean, default=False, nullable=False),
        Column("bind_root", Text, default="", server_default="", nullable=False),
        Column("bind_subpath", Text, default="", server_default="", nullable=False),
    ),
    """A named or anonymous volume of the local driver.""",
)


ContainerVolumeRow: Any = Rows(
    Table(
        "container_volumes",
        metadata,
        Column("container_id", ForeignKey("containers.id", ondelete="CASCADE"), primary_key=True),
        Column(
            "volume_name",
            ForeignKey("volumes.name", ondelete="RESTRICT"),
            primary_key=True,
            index=True,
        ),
        Column("destination", Text, primary_key=True),
    ),
    """A container's use of a volume: the RESTRICT foreign key keeps in-use volumes undeletable.""",
)


Index("ix_events_type_time", EventRow.type, EventRow.time_nano)
