"""Containers (layer: engine): the lifecycle of containers over the runtime driver: create,
start, stop, kill, wait, remove, update, restart policies, health probes, logs, and restore of
what still runs after a daemon restart. L{ContainerService} is the area's one service, made of
the modules here: C{base} (records, state, lookups), C{create}, C{lifecycle} (start, stop, kill,
wait, remove, rename, update, pause, prune), C{restart} (exits and restart policies), C{health},
C{logs} (rotation, read, follow; C{logfiles} holds the file formats), C{restore}, C{service}.
"""

from pyd.engine.containers.base import (
    ContainerSettings,
    LogsRequest,
    endpoints_of,
    mounts_listed,
    ports_of,
)
from pyd.engine.containers.service import ContainerService

__all__ = [
    "ContainerService",
    "ContainerSettings",
    "LogsRequest",
    "endpoints_of",
    "mounts_listed",
    "ports_of",
]
