"""One class for the field tuples of the attrs classes pyd defines (layer: core).

attrs gives each class it makes a tuple of its fields (C{__attrs_attrs__}, what
C{attrs.fields(cls)} returns) whose type is a tuple subclass made for that class, with a
property and a getter function per field, so that C{fields(cls).name} reads a field by name:
a type with its dict and ~300 bytes per field, for each of the ~200 attrs classes of a daemon,
kept for its life (~0.6 MB by tracemalloc at rest). L{share_field_tuples} makes attrs use one
class for them, L{FieldsByName}, which finds a field by name when one is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# a tuple's own attributes: a field so named would not be reached through __getattr__
_TUPLE_NAMES = frozenset(dir(tuple))


class FieldsByName(tuple):  # type: ignore[type-arg]  # of attrs.Attribute records
    """An attrs class's fields (C{attrs.Attribute}), each also an attribute by its name."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        for field in self:
            if field.name == name:
                return field
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _sharing(own: Callable[[str, list[str]], type]) -> Callable[[str, list[str]], type]:
    def fields_class(cls_name: str, attr_names: list[str]) -> type:
        if _TUPLE_NAMES.intersection(attr_names):  # `count`, `index`: attrs' own class
            return own(cls_name, attr_names)
        return FieldsByName

    fields_class.__wrapped__ = own  # type: ignore[attr-defined]  # what it replaced
    return fields_class


def share_field_tuples() -> bool:
    """Make attrs use L{FieldsByName} for the classes it makes from now on (idempotent); a class
    with a field named like a tuple method (C{count}, C{index}) still gets a class of its own.
    False, and attrs left alone, when this attrs has no such hook."""
    import importlib

    make: Any = importlib.import_module("attr._make")
    own = getattr(make, "_make_attr_tuple_class", None)
    if own is None:
        return False
    if getattr(own, "__wrapped__", None) is None:
        make._make_attr_tuple_class = _sharing(own)
    return True
