"""The C{platform}/C{platforms} query parameters of the image endpoints (layer: api).

Each is an OCI platform as JSON (C{{"os":"linux","architecture":"arm64"}}), decoded as moby 28's
api/server/httputils/form.go C{DecodePlatform}, from the API version the route takes it in;
below it the parameter is ignored, as dockerd ignores it.
"""

from __future__ import annotations

import json
from typing import Any

from pyd.api.base import api_version
from pyd.api.wire import qlist
from pyd.core.errors import InvalidParameter
from pyd.engine.images.platform import Platform
from pyd.engine.spec.gojson import go_syntax_error


def decode_platform(raw: str) -> Platform:
    """One platform (moby 28 DecodePlatform's checks and texts).

    @raise InvalidParameter: not a JSON object, or without OS and architecture.
    """
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise InvalidParameter(f"failed to parse platform: {go_syntax_error(raw, e)}") from None
    if not isinstance(value, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(value), "number")
        raise InvalidParameter(
            f"failed to parse platform: json: cannot unmarshal {kind} into Go value of type "
            "v1.Platform"
        )

    def field(key: str) -> str:
        v = value.get(key)
        if v is not None and not isinstance(v, str):
            raise InvalidParameter(
                f"failed to parse platform: json: cannot unmarshal {type(v).__name__} into Go "
                f"struct field Platform.{key} of type string"
            )
        return v or ""

    os_, arch, variant = field("os"), field("architecture"), field("variant")
    optional = variant or value.get("os.version") or value.get("os.features")
    if not os_ and not arch and optional:
        raise InvalidParameter(
            "optional platform fields provided, but OS and Architecture are missing"
        )
    if not os_ or not arch:
        raise InvalidParameter("both OS and Architecture must be provided")
    return Platform(os_, arch, variant)


def platform_param(
    request: Any, since: tuple[int, int], name: str = "platform", single: bool = False
) -> Platform | None:
    """The request's C{platform} (from API version C{since}; None when absent or older).
    C{single}: more than one is moby 28's 400 (save and load).

    @raise InvalidParameter: see L{decode_platform}.
    """
    if api_version(request) < since:
        return None
    values = qlist(request, name)
    if single and len(values) > 1:
        raise InvalidParameter("multiple platform parameters not supported")
    raw = values[0] if values else ""
    return decode_platform(raw) if raw else None


def platforms_param(request: Any, since: tuple[int, int]) -> list[Platform]:
    """Every C{platforms} value (delete; from API version C{since})."""
    if api_version(request) < since:
        return []
    return [decode_platform(v) for v in qlist(request, "platforms")]
