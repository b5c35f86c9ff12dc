"""Go's typed JSON decoding of a container create body (layer: engine).

dockerd decodes C{POST /containers/create} into Go structs (C{container.CreateRequest}): a value of
the wrong JSON type is refused with Go's C{UnmarshalTypeError} text (a 400 since dockerd 23), keys
match field names case-insensitively (an exact match first), unknown keys are ignored, C{null}
leaves a field at its zero value. L{decode} does the same over a parsed JSON value and returns the
body with Go's field names only, ready for L{pyd.engine.spec.parse}. The schema below names each
field's Go type as Go prints it in messages (moby v28 C{api/types}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from pyd.core.errors import InvalidParameter

_INT_RANGES = {
    "int": (-(1 << 63), (1 << 63) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint": (0, (1 << 64) - 1),
    "uint16": (0, (1 << 16) - 1),
    "uint32": (0, (1 << 32) - 1),
    "uint64": (0, (1 << 64) - 1),
}


class Fatal(Exception):
    """A custom unmarshaler failed: Go stops decoding at once (type errors are only saved)."""


@attrs.frozen
class GoType:
    """One Go type: C{kind} is string, bool, int, strslice, list, array, map or struct; C{name} is
    how Go prints it; C{elem} the element type; C{fields} a struct's JSON names."""

    kind: str
    name: str
    elem: GoType | None = None
    fields: Mapping[str, GoType] = attrs.field(factory=dict)
    length: int = 0  # arrays
    struct: str = ""  # a struct's own name (the prefix of Go's "Go struct field X.path")


def s(name: str = "string") -> GoType:
    """A string (or a named string type such as C{container.NetworkMode})."""
    return GoType("string", name)


def b() -> GoType:
    """A bool."""
    return GoType("bool", "bool")


def i(name: str = "int64") -> GoType:
    """An integer type (int, int64, uint16, uint32, uint64, uint) or a named one."""
    return GoType("int", name)


def lst(elem: GoType, name: str = "") -> GoType:
    """A slice."""
    return GoType("list", name or "[]" + elem.name, elem)


def m(elem: GoType, name: str = "") -> GoType:
    """A map with string keys."""
    return GoType("map", name or f"map[string]{elem.name}", elem)


def struct(name: str, **fields: GoType) -> GoType:
    """A struct; C{name} is package-qualified (C{container.LogConfig})."""
    return GoType("struct", name, fields=fields, struct=name.rsplit(".", 1)[-1])


STRSLICE = GoType("strslice", "strslice.StrSlice")
EMPTY = GoType("struct", "struct {}", struct="")
STRMAP = m(s())


def _int_range(t: GoType) -> tuple[int, int]:
    base = t.name if t.name in _INT_RANGES else _NAMED_INTS.get(t.name, "int64")
    return _INT_RANGES[base]


_NAMED_INTS = {"time.Duration": "int64", "fs.FileMode": "uint32"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


class JSONFloat(float):
    """A JSON number with a fraction or exponent that remembers how it was written (Go quotes
    the literal in its messages: C{number 1e3})."""

    text: str


def json_float(text: str) -> JSONFloat:
    """C{parse_float} for C{json}: the value, with its literal kept."""
    out = JSONFloat(text)
    out.text = text
    return out


def _number_text(value: Any) -> str:
    if isinstance(value, float):
        return getattr(value, "text", None) or repr(value)
    return str(value)


@attrs.define
class _Ctx:
    struct: str = ""
    stack: tuple[str, ...] = ()
    first: str = ""  # the first type error (Go saves it and keeps decoding)
    lenient: bool = False  # drop mistyped values instead of refusing (stored records)

    def message(self, value: str, type_name: str) -> str:
        if self.struct or self.stack:
            where = f"Go struct field {self.struct}.{'.'.join(self.stack)}"
        else:
            where = "Go value"
        return f"json: cannot unmarshal {value} into {where} of type {type_name}"

    def save(self, value: str, type_name: str) -> None:
        if not self.first:
            self.first = self.message(value, type_name)


def fold(key: str) -> str:
    """Go's case-insensitive field matching (Unicode simple folding, e.g. K -> k)."""
    return key.casefold()


def _decode(value: Any, t: GoType, ctx: _Ctx) -> Any:
    if value is None:
        return None
    k = t.kind
    if k == "strslice":
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(x is None or isinstance(x, str) for x in value):
            return ["" if x is None else x for x in value]
        # StrSlice tries []string, then string; the second error is returned, at once
        if ctx.lenient:
            return None
        raise Fatal(ctx.message(_kind(value), "string"))
    if k == "string":
        if isinstance(value, str):
            return value
        ctx.save(_kind(value), t.name)
        return None
    if k == "bool":
        if isinstance(value, bool):
            return value
        ctx.save(_kind(value), t.name)
        return None
    if k == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.save(_kind(value), t.name)
            return None
        lo, hi = _int_range(t)
        if isinstance(value, float) or not lo <= value <= hi:
            ctx.save("number " + _number_text(value), t.name)
            return None
        return value
    if k in ("list", "array"):
        if not isinstance(value, list):
            ctx.save(_kind(value), t.name)
            return None
        assert t.elem is not None
        items = value[: t.length] if k == "array" else value
        out = [_elem(x, t.elem, ctx) for x in items]
        if k == "array":
            out += [0] * (t.length - len(out))
        return out
    if k == "map":
        if not isinstance(value, dict):
            ctx.save(_kind(value), t.name)
            return None
        assert t.elem is not None
        return {key: _elem(v, t.elem, ctx) for key, v in _items(value)}
    if k == "struct":
        if not isinstance(value, dict):
            ctx.save(_kind(value), t.name)
            return None
        return _struct(value, t, ctx)
    raise AssertionError(k)


def _elem(value: Any, t: GoType, ctx: _Ctx) -> Any:
    """A list element or map value: Go stores C{null} as the element type's zero value."""
    if value is None:
        return _ZERO.get(t.kind)
    return _decode(value, t, ctx)


_ZERO: dict[str, Any] = {"string": "", "int": 0, "bool": False}


def _struct(value: Mapping[str, Any], t: GoType, ctx: _Ctx) -> dict[str, Any]:
    folded = {fold(name): name for name in t.fields}
    out: dict[str, Any] = {}
    outer = ctx.struct
    for key, raw in _items(value):
        name = key if key in t.fields else folded.get(fold(key))
        if name is None:
            continue  # Go ignores unknown keys
        ctx.struct = t.struct or outer
        saved_stack = ctx.stack
        ctx.stack = (*saved_stack, name)
        try:
            got = _decode(raw, t.fields[name], ctx)
        finally:
            ctx.stack = saved_stack
            ctx.struct = outer
        if name in out:
            # a second key naming the same field decodes into the value already there
            got = _merge(out[name], got, t.fields[name])
        out[name] = got
    return out


def _merge(before: Any, got: Any, t: GoType) -> Any:
    if not (isinstance(before, dict) and isinstance(got, dict)):
        return got
    if t.kind == "map":
        return {**before, **got}  # Go keeps the map; each entry is decoded afresh
    out = dict(before)
    for k, v in got.items():
        out[k] = _merge(out.get(k), v, t.fields[k]) if k in out else v
    return out


class JSONObject(dict[str, Any]):
    """A JSON object that remembers every key/value pair as sent, duplicates included."""

    pairs: list[tuple[str, Any]]


def object_pairs(pairs: list[tuple[str, Any]]) -> JSONObject:
    """C{object_pairs_hook} for C{json}: a dict (the last duplicate wins, as Python's) that keeps
    the pairs, so L{decode} can treat duplicate keys as Go does."""
    out = JSONObject(pairs)
    out.pairs = pairs
    return out


def _items(value: Mapping[str, Any]) -> Any:
    pairs = getattr(value, "pairs", None)
    return pairs if pairs is not None else value.items()


def decode(value: Any, t: GoType, lenient: bool = False) -> Any:
    """Decode a parsed JSON value into Go's shape of C{t}.

    @param lenient: a mistyped value is dropped (read as Go's zero value) instead of refused:
        for records stored before the typed door, which must stay stoppable and removable.
    @return: the value with Go's field names (unknown keys dropped, mistyped fields refused).
    @raise InvalidParameter: C{invalid JSON: json: cannot unmarshal ...} (dockerd's text).
    """
    ctx = _Ctx(lenient=lenient)
    try:
        out = _decode(value, t, ctx)
    except Fatal as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None
    if ctx.first and not lenient:
        raise InvalidParameter(f"invalid JSON: {ctx.first}")
    return out


def paths(t: GoType, prefix: str = "") -> list[str]:
    """Every field path of a struct type (C{HostConfig.LogConfig.Type}), for the field table."""
    out: list[str] = []
    for name, ft in t.fields.items():
        path = f"{prefix}{name}"
        out.append(path)
        inner = ft
        while inner.kind in ("list", "map", "array") and inner.elem is not None:
            inner = inner.elem
        if inner.kind == "struct" and inner.fields:
            out += paths(inner, path + ".")
    return out


def go_syntax_error(raw: str, e: ValueError) -> str:
    """Go's C{encoding/json} text for the syntax error Python's decoder reported as C{e} (the
    common cases: what dockerd answers for a malformed JSON query parameter)."""
    pos = getattr(e, "pos", None)
    msg = getattr(e, "msg", "")
    if pos is None or pos >= len(raw):
        return "unexpected end of JSON input"
    c = raw[pos]
    quoted = "'\\''" if c == "'" else f"'{c}'"
    if msg.startswith("Expecting property name"):
        where = "looking for beginning of object key string"
    elif msg.startswith("Expecting ':'"):
        where = "after object key"
    elif msg.startswith("Expecting ','"):
        where = (
            "after array element" if _innermost(raw[:pos]) == "[" else "after object key:value pair"
        )
    elif msg.startswith("Extra data"):
        where = "after top-level value"
    else:
        where = "looking for beginning of value"
    return f"invalid character {quoted} {where}"


def _innermost(prefix: str) -> str:
    """The innermost open bracket of a JSON prefix (strings skipped)."""
    stack: list[str] = []
    in_str = esc = False
    for ch in prefix:
        if in_str:
            esc = not esc and ch == "\\"
            in_str = esc or ch != '"'
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""
