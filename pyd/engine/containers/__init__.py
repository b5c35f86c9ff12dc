"""Containers (layer: engine): the lifecycle of containers over the runtime driver: create,
start, stop, kill, wait, remove, update, restart policies, health probes, logs, and restore of
what still runs after a daemon restart. L{ContainerService} is the area's one service."""

from pyd.engine.containers.service import (
    ContainerService,
    ContainerSettings,
    LogsRequest,
    _labels_match,
    endpoints_of,
    mounts_listed,
    ports_of,
)

__all__ = [
    "ContainerService",
    "ContainerSettings",
    "LogsRequest",
    "_labels_match",
    "endpoints_of",
    "mounts_listed",
    "ports_of",
]
