"""The typed specs of stored containers, remembered (layer: engine).

A container's spec is decoded again from its stored sections each time the engine reads it
(L{pyd.engine.spec.stored_spec}: Go's typed decoding and the records, ~0.3 ms); a `docker run`
reads it about ten times (start, network, ulimits, process, exit, auto-remove, logs). The
decoding is a function of the three sections' values alone, so a spec is kept for the
container's sections as they were read: it is used again only for the very same section
objects (a new record, after an update, has new ones) with the same values as then (nothing
changed them in place). Bounded; a removed container's entry is dropped.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from pyd.engine.spec.parse import stored_spec
from pyd.engine.spec.records import CreateSpec

# Containers whose spec is kept: those a burst of lifecycle calls is working on.
REMEMBERED = 64


class RememberedSpecs:
    """C{stored_spec}, remembered per container."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[tuple[Any, ...], tuple[Any, ...], CreateSpec]] = (
            OrderedDict()
        )

    def spec(
        self,
        cid: str,
        config: Mapping[str, Any] | None,
        host_config: Mapping[str, Any] | None,
        networking_config: Mapping[str, Any] | None,
    ) -> CreateSpec:
        """The spec of the container's stored sections (decoded, or remembered from the last
        read of these same sections)."""
        sections = (config, host_config, networking_config)
        hit = self._entries.get(cid)
        if hit is not None:
            objects, values, spec = hit
            if all(a is b for a, b in zip(objects, sections, strict=True)) and values == sections:
                self._entries.move_to_end(cid)
                return spec
        spec = stored_spec(config, host_config, networking_config)
        self._entries[cid] = (sections, copy.deepcopy(sections), spec)
        self._entries.move_to_end(cid)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return spec

    def forget(self, cid: str) -> None:
        """Drop what is kept for a removed container."""
        self._entries.pop(cid, None)

    def __len__(self) -> int:
        return len(self._entries)
