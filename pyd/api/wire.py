"""Request parsing: strict JSON bodies with size caps, query parameters, C{filters=} (layer: api)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
from twisted.web.iweb import IRequest

from pyd.core.errors import InvalidParameter
from pyd.core.ids import go_quote
from pyd.engine.spec import CreateSpec
from pyd.engine.spec.gojson import json_float, object_pairs

MAX_JSON_BODY = 4 * 1024 * 1024
_FALSE = {"", "0", "no", "false", "none"}


def read_json(
    request: IRequest,
    *,
    max_size: int = MAX_JSON_BODY,
    required: bool = True,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
    parse_float: Callable[[str], Any] | None = None,
) -> Any:
    """Parse the request body as one JSON value, as dockerd's C{ReadJSON} does.

    @param object_pairs_hook: as C{json}'s (the create body keeps duplicate keys for Go's rules).

    @raise InvalidParameter: wrong content type, too large, malformed or trailing data.
    """
    content = request.content
    if content is None:
        raw = b""
    else:
        content.seek(0)
        raw = content.read(max_size + 1)
    if len(raw) > max_size:
        raise InvalidParameter(f"request body too large (limit {max_size} bytes)")
    if not raw.strip():
        if required:
            raise InvalidParameter("invalid JSON: request body is empty")
        return None
    ctype = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
    if ctype and ctype != "application/json":
        raise InvalidParameter(
            f"unsupported Content-Type header ({ctype}): must be 'application/json'"
        )
    try:
        text = raw.decode("utf-8")
        decoder = json.JSONDecoder(object_pairs_hook=object_pairs_hook, parse_float=parse_float)
        value, end = decoder.raw_decode(text.lstrip())
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidParameter(f"invalid JSON: {e}") from e
    if text.lstrip()[end:].strip():
        raise InvalidParameter("invalid JSON: unexpected data after JSON body")
    return value


def create_spec_of(
    request: IRequest, parse: Callable[[Any, tuple[int, int]], CreateSpec]
) -> CreateSpec:
    """The typed create spec of a C{POST /containers/create} request, parsed once per request:
    the authorization rules and the handler read the same object.

    @param parse: the engine's door (C{ContainerService.parse_create}).
    @raise InvalidParameter: the body is not JSON, or dockerd refuses it (see L{parse}).
    """
    cached: CreateSpec | None = getattr(request, "pyd_create_spec", None)
    if cached is None:
        body = read_json(
            request, required=False, object_pairs_hook=object_pairs, parse_float=json_float
        )
        version: tuple[int, int] = getattr(request, "pyd_api_version", (1, 50))
        cached = parse(body, version)
        request.pyd_create_spec = cached  # type: ignore[attr-defined]  # set once per request
    return cached


def confined(request: IRequest, spec: CreateSpec) -> CreateSpec:
    """C{spec} with the caller's bind confinement: the allowed-bind-paths roots the guard
    admitted a non-admin's binds under (C{request.pyd_bind_roots}); an admin's stays unconfined
    (bind sources followed by name, as dockerd)."""
    roots: tuple[str, ...] | None = getattr(request, "pyd_bind_roots", None)
    if roots is None:
        return spec
    return attrs.evolve(spec, mounts=attrs.evolve(spec.mounts, bind_roots=roots))


def read_json_object(request: IRequest, *, required: bool = True) -> dict[str, Any]:
    """Like L{read_json}, but the value must be an object (an empty body gives C{{}})."""
    value = read_json(request, required=required)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter("invalid JSON: expected an object")
    return value


def qstr(request: IRequest, name: str, default: str | None = None) -> str | None:
    """The first value of query parameter C{name}, decoded."""
    args: dict[bytes, list[bytes]] = request.args or {}
    vals = args.get(name.encode())
    if not vals:
        return default
    return vals[0].decode("utf-8", "replace")


def qlist(request: IRequest, name: str) -> list[str]:
    """Every value of a repeated query parameter."""
    args: dict[bytes, list[bytes]] = request.args or {}
    return [v.decode("utf-8", "replace") for v in args.get(name.encode(), [])]


def qbool(request: IRequest, name: str, default: bool = False) -> bool:
    """dockerd's boolean: anything but C{"", 0, no, false, none} is true."""
    v = qstr(request, name)
    if v is None:
        return default
    return v.strip().lower() not in _FALSE


_INT64 = 1 << 63


def qint(
    request: IRequest, name: str, default: int | None = None, func: str = "strconv.Atoi"
) -> int | None:
    """An integer query parameter, as Go's C{strconv.Atoi} (or C{ParseInt(v, 10, 64)}, named by
    C{func} in the error) reads it: ASCII digits with an optional sign, within int64.

    @raise InvalidParameter: not an integer, or out of range (Go's texts).
    """
    v = qstr(request, name)
    if v is None or v == "":
        return default
    digits = v[1:] if v[:1] in ("+", "-") else v
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidParameter(f"{func}: parsing {go_quote(v)}: invalid syntax")
    n = int(v)
    if not -_INT64 <= n < _INT64:
        raise InvalidParameter(f"{func}: parsing {go_quote(v)}: value out of range")
    return n


def qint_or_zero(request: IRequest, name: str) -> int:
    """dockerd's C{httputils.Int64ValueOrZero}: an int64 query parameter, and 0 for anything
    that is not one (junk, out of range) instead of an error."""
    try:
        return qint(request, name, 0, "strconv.ParseInt") or 0
    except InvalidParameter:
        return 0


def resize_size(request: IRequest) -> tuple[int, int]:
    """C{h} and C{w} of a resize request, both required, as dockerd's httputils.Uint32Value
    reads them. @raise InvalidParameter: C{invalid resize height "x": invalid syntax}."""
    out = []
    for name, what in (("h", "height"), ("w", "width")):
        raw = qstr(request, name) or ""
        v = raw.removeprefix("-")
        if not v.isascii() or not v.isdigit():
            raise InvalidParameter(f"invalid resize {what} {go_quote(raw)}: invalid syntax")
        if raw.startswith("-") or int(v) > 0xFFFFFFFF:
            raise InvalidParameter(f"invalid resize {what} {go_quote(raw)}: value out of range")
        out.append(int(v))
    return out[0], out[1]


def parse_filters(request: IRequest, name: str = "filters") -> dict[str, list[str]]:
    """Decode C{filters=}: the map-of-bools form and the old map-of-lists form.

    @raise InvalidParameter: not JSON or not one of the two forms (moby 28
        api/types/filters/parse.go FromJSON: C{invalid filter}, naming nothing).
    """
    raw = qstr(request, name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidParameter("invalid filter") from None
    if not isinstance(value, dict):
        raise InvalidParameter("invalid filter")
    out: dict[str, list[str]] = {}
    for key, vals in value.items():
        if isinstance(vals, dict):
            out[key] = [k for k, on in vals.items() if on]
        elif isinstance(vals, list):
            out[key] = [str(v) for v in vals]
        else:
            raise InvalidParameter("invalid filter")
    return out


def check_filters(filters: dict[str, list[str]], allowed: set[str]) -> None:
    """dockerd's error for an unknown filter key."""
    for key in filters:
        if key not in allowed:
            raise InvalidParameter(f"invalid filter '{key}'")


# json.dumps with separators builds an encoder on every call
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def encode_json(value: Any) -> bytes:
    """C{value} encoded as the API's answers encode it (L{json_body}, without its newline)."""
    return _ENCODE(value).encode()


def json_bytes(request: IRequest, encoded: bytes, code: int = 200) -> bytes:
    """L{json_body} for a value already encoded (L{encode_json})."""
    body = encoded + b"\n"
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


def json_body(request: IRequest, value: Any, code: int = 200) -> bytes:
    """Set status and content type; return C{value} as JSON and a newline, like Go's encoder.

    The answer carries its length, as dockerd's do (Go's server sets it when the handler wrote
    its whole answer at once): twisted.web would frame it in chunks, one more write for the
    chunk header and one for the last chunk. Every caller returns the body as the whole answer.
    """
    body = _ENCODE(value).encode() + b"\n"
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


def no_content(request: IRequest, code: int = 204) -> bytes:
    """An empty response (204 by default)."""
    request.setResponseCode(code)
    return b""
