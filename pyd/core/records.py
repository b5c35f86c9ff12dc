"""Frozen records passed between layers (layer: core).

The engine takes and returns these; the API layer alone turns them into Docker's wire JSON.
Each area adds its records here (frozen attrs classes, no behaviour beyond derived properties).
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Event:
    """One entry of the event log (C{docker events})."""

    id: int
    type: str
    action: str
    actor_id: str
    attributes: dict[str, str]
    scope: str
    time_nano: int


@attrs.frozen
class DaemonInfo:
    """Identity of this daemon, persisted across restarts."""

    id: str
    name: str
    extra: dict[str, Any] = attrs.field(factory=dict)
