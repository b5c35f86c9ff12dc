"""Images (layer: engine): the local image store, writable layers, commit and the archive
formats of save/load/import. L{ImageService} is the area's one service; see its modules."""

from pyd.engine.images.service import CommitSource, DeleteItem, ImageService, rfc3339

__all__ = ["CommitSource", "DeleteItem", "ImageService", "rfc3339"]
