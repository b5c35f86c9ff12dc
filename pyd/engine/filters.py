"""Docker's list filters shared by the areas (layer: engine)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def labels_match(labels: dict[str, Any], wanted: Sequence[str], any_: bool = False) -> bool:
    """Whether C{labels} has every (C{any_}: some) C{key} or C{key=value} of C{wanted}, as
    dockerd's C{label} filter matches (a C{key!=value} names the key C{key!})."""
    results = []
    for w in wanted:
        k, sep, v = w.partition("=")
        results.append(k in labels and (not sep or str(labels[k]) == v))
    return any(results) if any_ else all(results)
