"""Images (layer: engine): the local image store, writable layers, commit and the archive
formats of save/load/import. L{ImageService} is the area's one service, put together from:

- C{store}: dependencies, lookup, events, storing an image from its config and layer files;
- C{layers}: containers' writable layers (create, mount, size, paths, diff);
- C{commit}: a writable layer becomes an image (docker commit, builder steps);
- C{catalog}: list, inspect, history, tag, delete, prune;
- C{archive}: load, save, import;
- C{service}: the service itself, its system counts and the registry's view of the store.
"""

from pyd.core.records import CommitSource
from pyd.engine.images.service import ImageService
from pyd.engine.images.store import (
    ContainersUsing,
    DeleteItem,
    HistoryItem,
    PruneReport,
    chain_id,
    rfc3339,
)

__all__ = [
    "CommitSource",
    "ContainersUsing",
    "DeleteItem",
    "HistoryItem",
    "ImageService",
    "PruneReport",
    "chain_id",
    "rfc3339",
]
