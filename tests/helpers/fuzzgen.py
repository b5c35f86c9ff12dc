"""Hypothesis strategies for Engine API requests, generated from the spec's operations
(tests/helpers/apispec.py): path parameters, query parameters by their spec type and mutated,
JSON bodies from their schema and mutated at every level, raw bodies (tar streams)."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import tarfile
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import attrs
from hypothesis import strategies as st

# Text that has broken parsers before: non-ASCII digits, huge numbers, separators, escapes,
# NULs, surrogate-free non-BMP characters, path tricks, format strings.
ODD_STRINGS = (
    "", " ", "¹", "١٢", "\U0001d7d9", "1e3", "1.5", "-1", "-0", "+1", "0x10", "9" * 40, "-" + "9" * 40,
    "NaN", "inf", "true", "null", "[]", "{}", "{", "..", "../..", "/", "//", ".", "a/../b",
    "%2F", "%00", "\x00", "\n", "\t", "é", "😀", "\u202e", "{{.ID}}", "%s%n", "$(id)",
    "a" * 300, "/etc/passwd", "C:\\x", "SIGKILL", "SIGFOO", "0", "-9", "65", "sig", "ctrl-p",
    "ctrl-", "x,y", "a=b", "=", "busybox:latest", "busybox@sha256:" + "0" * 64, "sha256:",
    "sha256:" + "z" * 64,
)  # fmt: skip

odd_text = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=20))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    odd_text,
)
any_json = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(odd_text, inner, max_size=3)
    ),
    max_leaves=8,
)


@attrs.frozen
class Request:
    """One generated request."""

    method: str
    path: str  # with the query string
    body: bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] = attrs.field(factory=dict)

    def describe(self) -> str:
        """One line for failure messages."""
        body = self.body if self.body is None or len(self.body) < 400 else self.body[:400] + b"..."
        return f"{self.method} {self.path} body={body!r} ctype={self.content_type}"


class SchemaStrategies:
    """Values for the spec's schemas: well typed, and mutated (a wrong type, null, an extra
    field, a non-ASCII digit) at any level."""

    def __init__(self, definitions: dict[str, Any], max_depth: int = 4) -> None:
        self.definitions = definitions
        self.max_depth = max_depth

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """C{schema} with C{$ref} and C{allOf} merged into one object schema."""
        ref = schema.get("$ref")
        if ref:
            return self.resolve(self.definitions[ref.rsplit("/", 1)[1]])
        parts = schema.get("allOf")
        if not parts:
            return schema
        merged: dict[str, Any] = {"type": "object", "properties": {}}
        for part in parts:
            r = self.resolve(part)
            merged["properties"].update(r.get("properties") or {})
        merged["properties"].update(schema.get("properties") or {})
        return merged

    def wrong(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        """A value of another JSON type than C{schema}'s (or null, or a type confusion)."""
        kind = self.resolve(schema).get("type")
        options: list[st.SearchStrategy[Any]] = [st.none()]
        if kind != "string":
            options.append(odd_text)
        if kind not in ("integer", "number"):
            options.append(st.integers(min_value=-(2**64), max_value=2**64))
        if kind != "boolean":
            options.append(st.booleans())
        if kind != "array":
            options.append(st.lists(any_json, max_size=2))
            options.append(st.just([["sh"]]))
        if kind != "object":
            options.append(st.dictionaries(odd_text, any_json, max_size=2))
        if kind in ("integer", "number"):
            options.append(st.sampled_from([1.5, 1e300, -1e300, 2**64, -(2**64) - 1, 1e3]))
        return st.one_of(options)

    def valid(self, schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
        """A value of C{schema}'s type (well typed, not necessarily meaningful)."""
        s = self.resolve(schema)
        if "enum" in s:
            return st.sampled_from(s["enum"])
        kind = s.get("type")
        if kind == "boolean":
            return st.booleans()
        if kind == "integer":
            return st.one_of(
                st.integers(min_value=-2, max_value=4096),
                st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64]),
            )
        if kind == "number":
            return st.one_of(st.integers(-2, 100), st.floats(allow_nan=False, allow_infinity=False))
        if kind == "string":
            return odd_text
        if depth >= self.max_depth:
            return st.none()
        if kind == "array" or "items" in s:
            return st.lists(self.value(s.get("items") or {}, depth + 1), max_size=3)
        props = s.get("properties")
        if props:
            return st.fixed_dictionaries(
                {},
                optional={k: self.value(v, depth + 1) for k, v in props.items()},
            )
        extra = s.get("additionalProperties")
        if isinstance(extra, dict):
            return st.dictionaries(odd_text, self.value(extra, depth + 1), max_size=3)
        return any_json

    def value(self, schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
        """Mostly well typed, sometimes mutated at this level (the first branch is what
        Hypothesis shrinks towards)."""
        good = self.valid(schema, depth)
        return st.one_of(good, good, good, self.wrong(schema))

    def body(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        """A whole body: the schema's value (mutated inside), with an extra field, or replaced
        by another JSON type."""
        base = self.value(schema)
        with_extra = st.builds(
            lambda v, k, x: {**v, k: x} if isinstance(v, dict) else v, base, odd_text, any_json
        )
        return st.one_of(base, with_extra, self.wrong(schema))


def tar_bytes(entries: Sequence[tuple[str, bytes]]) -> bytes:
    """A tar stream of regular files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


raw_bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    st.builds(
        tar_bytes,
        st.lists(
            st.tuples(
                st.sampled_from(["a", "Dockerfile", "../x", "/abs", "d/e", ".", "a" * 120]),
                st.sampled_from([b"", b"FROM busybox\n", b"FROM scratch\nCOPY a /\n", b"\xff"]),
            ),
            max_size=3,
        ),
    ),
    st.just(b"\x1f\x8b\x08\x00" + b"\x00" * 12),  # a truncated gzip header
    # compressed tars cut short (the stream ends inside the first header)
    st.just(gzip.compress(tar_bytes([("Dockerfile", b"FROM busybox\n" * 64)]))[:40]),
    st.just(bz2.compress(tar_bytes([("Dockerfile", b"FROM busybox\n" * 64)]))[:40]),
)


def query_value(param: dict[str, Any]) -> st.SearchStrategy[list[str]]:
    """Values (a repeated parameter: several) for one query parameter, by its spec type, often
    mutated."""
    kind = param.get("type")
    name = param.get("name", "")
    if name == "filters" or name.endswith("args") or name in ("labels", "changes"):
        spec_like = st.one_of(
            st.dictionaries(odd_text, st.lists(odd_text, max_size=2), max_size=2),
            st.dictionaries(
                odd_text, st.dictionaries(odd_text, st.booleans(), max_size=2), max_size=2
            ),
            any_json,
        )
        typed = st.one_of(spec_like.map(json.dumps), odd_text)
    elif "enum" in param:
        typed = st.one_of(st.sampled_from([str(v) for v in param["enum"]]), odd_text)
    elif kind == "boolean":
        typed = st.one_of(st.sampled_from(["1", "0", "true", "false", "True", "no", ""]), odd_text)
    elif kind == "integer":
        typed = st.one_of(
            st.integers(min_value=-(2**65), max_value=2**65).map(str),
            st.integers(min_value=0, max_value=30).map(str),
            odd_text,
        )
    else:
        typed = odd_text
    if kind == "array":
        return st.lists(typed, min_size=1, max_size=3)
    return typed.map(lambda v: [v])


def encode_query(pairs: Sequence[tuple[str, str]]) -> str:
    """The query string (every byte outside the unreserved set escaped)."""
    if not pairs:
        return ""
    return "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def encode_segment(value: str) -> str:
    """A path parameter as one segment (a C{/} in an image name stays a separator)."""
    return quote(value, safe="/:@")


def json_body_bytes(value: Any) -> st.SearchStrategy[bytes]:
    """C{value} serialized, or broken: invalid UTF-8, truncated, trailing data."""
    text = json.dumps(value).encode()
    return st.sampled_from(
        [
            text,
            text,
            text,
            text[: max(1, len(text) // 2)],
            text + b" {}",
            text.replace(b'"', b'"\xff', 1) if b'"' in text else b"\xff" + text,
        ]
    )


RequestStrategy = Callable[[dict[str, list[str]]], st.SearchStrategy[Request]]
