"""A fake of the overlay mount of L{pyd.drivers.storage.layers.LayerStore}: the real store's
directories, but a container's root filesystem is a plain copy of its layers instead of an
overlay mount (no privileges, no kernel state). Proven against the real store by
tests/contract/test_layer_store.py.

What it cannot do: a write into the merged copy does not reach the upper dir (the kernel's
copy-up), so tests of C{docker diff} write into L{LayerStore.upper_dir} directly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from typing import Any

from pyd.drivers.storage.layers import LayerStore


class UnmountedLayerStore(LayerStore):
    """The real layer store, with the overlay mount replaced by a copy of the plain files and
    directories of the layers (whiteouts are not applied: the fake's layers have none)."""

    def __init__(self, *args: Any, **kw: Any) -> None:  # the real store's parameters
        super().__init__(*args, **kw)
        self._mounted: set[str] = set()

    def mount_rw(self, container_id: str, lower_cache_ids: Sequence[str]) -> str:
        merged = self.merged_dir(container_id)
        if container_id in self._mounted:
            return merged
        os.makedirs(merged, exist_ok=True)
        for cache_id in reversed(lower_cache_ids):  # bottom-most first, upper ones win
            shutil.copytree(self.diff_dir(cache_id), merged, symlinks=True, dirs_exist_ok=True)
        shutil.copytree(self.upper_dir(container_id), merged, symlinks=True, dirs_exist_ok=True)
        self._mounted.add(container_id)
        return merged

    def unmount_rw(self, container_id: str) -> None:
        if container_id not in self._mounted:
            return
        self._mounted.discard(container_id)
        merged = self.merged_dir(container_id)
        shutil.rmtree(merged)
        os.mkdir(merged, 0o755)

    def is_mounted(self, container_id: str) -> bool:
        return container_id in self._mounted

    def remove_rw(self, container_id: str) -> None:
        self._mounted.discard(container_id)
        super().remove_rw(container_id)
