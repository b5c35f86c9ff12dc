"""dockerd's time parameters: unix seconds, C{secs.nanos}, RFC 3339 (layer: api)."""

from __future__ import annotations

import json
from datetime import datetime

from pyd.core.errors import InvalidParameter


def parse_time_nano(value: str) -> int:
    """Turn a C{since}/C{until} value into nanoseconds since the epoch.

    @raise InvalidParameter: not a recognised time.
    """
    v = value.strip()
    try:
        if "." in v and v.replace(".", "", 1).lstrip("-").isdigit():
            secs, frac = v.split(".", 1)
            return int(secs) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])
        if v.lstrip("-").isdigit():
            return int(v) * 1_000_000_000
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        return int(dt.timestamp() * 1_000_000_000)
    except ValueError as e:
        # dockerd (moby api/types/time ParseTimestamps) reads what is not a time or a duration
        # as seconds[.nanoseconds]: the seconds part fails strconv.ParseInt
        secs = json.dumps(v.split(".", 1)[0])
        raise InvalidParameter(f"strconv.ParseInt: parsing {secs}: invalid syntax") from e


def rfc3339_nano(time_nano: int) -> str:
    """Go's RFC3339Nano rendering in UTC (C{2026-11-28T12:30:03.148746858Z})."""
    secs, nanos = divmod(time_nano, 1_000_000_000)
    base = datetime.utcfromtimestamp(secs).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        return f"{base}.{nanos:09d}".rstrip("0") + "Z"
    return base + "Z"
