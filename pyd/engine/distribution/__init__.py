"""Pull, push, search and login against registries (layer: engine).

The rules dockerd applies around the Distribution protocol: reference to endpoints (mirrors,
insecure registries), manifest and platform selection, which layers to fetch, parallel downloads
limited by C{max-concurrent-downloads}, verification before anything reaches the store, the
progress messages (as L{Progress} records; the API renders them as JSON lines), the error texts.

The image store is reached through L{pyd.engine.contracts.RegistryImages}, implemented by the
images area. A pull
downloads and verifies every missing blob into a private staging directory first and only then
extracts layers and adds the image, so a failed or tampered download leaves the store unchanged.

Modules: C{base} (records, settings, endpoints), C{pull}, C{push}, C{search}
(docker search and login), C{service} (L{DistributionService}, made of them).

The submodules are imported when one of their names is first asked of the package (PEP 562):
the daemon builds its service on the first pull, push, search or login (L{lazy}), so one that
does none never loads them nor the registry client under them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyd.core.lean import names_from_submodules

if TYPE_CHECKING:
    from pyd.engine.distribution.base import (
        DistributionSettings,
        Progress,
        ProgressSink,
        chain_ids,
    )
    from pyd.engine.distribution.pull import _select_platform, host_platform, parse_platform
    from pyd.engine.distribution.search import SearchResult, split_search_term
    from pyd.engine.distribution.service import DistributionService

# the submodule that defines each name
_WHERE = {
    "DistributionSettings": "base",
    "Progress": "base",
    "ProgressSink": "base",
    "chain_ids": "base",
    "_select_platform": "pull",
    "host_platform": "pull",
    "parse_platform": "pull",
    "SearchResult": "search",
    "split_search_term": "search",
    "DistributionService": "service",
}

__getattr__ = names_from_submodules(__name__, _WHERE)


__all__ = [
    "DistributionService",
    "DistributionSettings",
    "Progress",
    "ProgressSink",
    "SearchResult",
    "_select_platform",
    "chain_ids",
    "host_platform",
    "parse_platform",
    "split_search_term",
]
