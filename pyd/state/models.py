"""The schema of record (layer: state).

SQLAlchemy 2 declarative tables. Alembic revisions in C{migrations/versions} must produce exactly
this schema (tests/unit/test_migrations.py compares them). Flexible Docker structures (Config,
HostConfig, State...) live in JSON columns; anything we filter, join or constrain on is a column.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with constraint names Alembic can compare."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class DaemonMeta(Base):
    """Key/value facts about this daemon (its persistent ID, ...)."""

    __tablename__ = "daemon_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class EventRow(Base):
    """The event log behind C{/events}, bounded by a retention count."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time_nano: Mapped[int] = mapped_column(BigInteger, index=True)
    type: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[str] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)
    scope: Mapped[str] = mapped_column(String(16), default="local")


class LayerRow(Base):
    """An extracted layer, shared by every image whose chain contains it."""

    __tablename__ = "layers"
    chain_id: Mapped[str] = mapped_column(String(71), primary_key=True)
    diff_id: Mapped[str] = mapped_column(String(71))
    parent: Mapped[str | None] = mapped_column(ForeignKey("layers.chain_id"), nullable=True)
    cache_id: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    compressed_digest: Mapped[str | None] = mapped_column(String(71), nullable=True)
    created: Mapped[int] = mapped_column(BigInteger)


class ImageRow(Base):
    """An image: its config blob (kept byte for byte, its digest is the id) and its top layer."""

    __tablename__ = "images"
    id: Mapped[str] = mapped_column(String(71), primary_key=True)
    config: Mapped[str] = mapped_column(Text)
    top_layer: Mapped[str | None] = mapped_column(ForeignKey("layers.chain_id"), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(71), nullable=True, index=True)
    cache_key: Mapped[str | None] = mapped_column(String(71), nullable=True, index=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[int] = mapped_column(BigInteger)
    last_tag_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ImageRefRow(Base):
    """A reference to an image: C{repo:tag} or C{repo@sha256:...} (fully normalised)."""

    __tablename__ = "image_refs"
    ref: Mapped[str] = mapped_column(String(512), primary_key=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # "tag" or "digest"
    created: Mapped[int] = mapped_column(BigInteger)


class RwLayerRow(Base):
    """A container's writable layer; its top_layer keeps the image's layers alive."""

    __tablename__ = "rw_layers"
    container_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    image_id: Mapped[str | None] = mapped_column(String(71), nullable=True, index=True)
    top_layer: Mapped[str | None] = mapped_column(ForeignKey("layers.chain_id"), nullable=True)
    created: Mapped[int] = mapped_column(BigInteger)


class ContainerRow(Base):
    """A container: Docker's Config/HostConfig as sent, plus its runtime state."""

    __tablename__ = "containers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    image_id: Mapped[str] = mapped_column(String(71), index=True)
    image_ref: Mapped[str] = mapped_column(String(512))
    created: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    host_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    network_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mounts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    restart_count: Mapped[int] = mapped_column(Integer, default=0)
    layer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class NetworkRow(Base):
    """A network (bridge driver, or the built-in host/none)."""

    __tablename__ = "networks"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    driver: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(16), default="local")
    created: Mapped[int] = mapped_column(BigInteger)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    attachable: Mapped[bool] = mapped_column(Boolean, default=False)
    enable_ipv6: Mapped[bool] = mapped_column(Boolean, default=False)
    ipam: Mapped[dict[str, Any]] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    bridge: Mapped[str | None] = mapped_column(String(15), nullable=True, unique=True)


class EndpointRow(Base):
    """A container's attachment to a network; UNIQUE constraints make IPAM double-allocation impossible."""

    __tablename__ = "endpoints"
    __table_args__ = (
        UniqueConstraint("network_id", "container_id"),
        UniqueConstraint("network_id", "ipv4"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    container_id: Mapped[str] = mapped_column(
        ForeignKey("containers.id", ondelete="CASCADE"), index=True
    )
    ipv4: Mapped[str | None] = mapped_column(String(18), nullable=True)
    mac: Mapped[str | None] = mapped_column(String(17), nullable=True)
    aliases: Mapped[list[Any]] = mapped_column(JSON, default=list)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class VolumeRow(Base):
    """A named or anonymous volume of the local driver."""

    __tablename__ = "volumes"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    driver: Mapped[str] = mapped_column(String(64), default="local")
    mountpoint: Mapped[str] = mapped_column(Text)
    created: Mapped[int] = mapped_column(BigInteger)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    # an operator's bind volume: the allowed-bind-paths directory its device is opened beneath
    # (and the device's path beneath it); "" for every other volume
    bind_root: Mapped[str] = mapped_column(Text, default="", server_default="")
    bind_subpath: Mapped[str] = mapped_column(Text, default="", server_default="")


class ContainerVolumeRow(Base):
    """A container's use of a volume: the RESTRICT foreign key keeps in-use volumes undeletable."""

    __tablename__ = "container_volumes"
    container_id: Mapped[str] = mapped_column(
        ForeignKey("containers.id", ondelete="CASCADE"), primary_key=True
    )
    volume_name: Mapped[str] = mapped_column(
        ForeignKey("volumes.name", ondelete="RESTRICT"), primary_key=True, index=True
    )
    destination: Mapped[str] = mapped_column(Text, primary_key=True)


Index("ix_events_type_time", EventRow.type, EventRow.time_nano)
