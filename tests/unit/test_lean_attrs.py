"""The attrs classes made after L{pyd.core.lean_attrs.share_field_tuples} share one field-tuple
class and read their fields by name as before; their generated methods carry no docstring nor
columns (pyd/core/lean_attrs.py)."""

from __future__ import annotations

import unittest

from tests.helpers.pychild import run_python

SCRIPT = """
import attr, attrs
from pyd.core import lean_attrs

@attrs.frozen
class Before:
    a: int

print(lean_attrs.share_field_tuples(), lean_attrs.share_field_tuples())
print(attr._make._make_attr_tuple_class.__wrapped__.__name__)

@attrs.frozen
class Point:
    x: int
    y: int = 2

@attrs.define
class Counted:
    count: int
    other: str = "o"

@attrs.define
class Empty:
    pass

f = attrs.fields(Point)
print(type(f).__name__, type(attrs.fields(Empty)).__name__, type(attrs.fields(Before)).__name__)
print(f.x is f[0], f.y.default, f.x.name, [a.name for a in f], attrs.fields_dict(Point)["y"] is f.y)
try:
    f.z
except AttributeError as e:
    print("AttributeError", "'z'" in str(e))
c = attrs.fields(Counted)
print(type(c).__name__ != "FieldsByName", c.count.name, c.other.default)
p = Point(1)
print(attrs.evolve(p, x=5), attrs.asdict(p), attrs.astuple(p), p == Point(1, 2), hash(p) == hash(Point(1)))
print(attrs.filters.include(f.x)(f.x, 1), attrs.fields(Point) == (f.x, f.y))
init = Point.__init__.__code__
print(Point.__init__.__doc__, Point.__eq__.__doc__, Before.__init__.__doc__ is not None,
      all(p[2] is None for p in init.co_positions()), any(p[0] for p in init.co_positions()),
      all(p[2] is not None for p in Before.__init__.__code__.co_positions() if p[0]))
"""


class ShareFieldTuplesTests(unittest.TestCase):
    def test_one_field_class_same_behaviour(self) -> None:
        """In a fresh process: classes made after the call (also an empty one) share
        FieldsByName, the ones made before keep theirs; fields read by index and by name are
        the same records, an unknown name raises AttributeError; a class with a field named
        like a tuple method keeps attrs' own class; evolve, asdict, astuple, equality, hashing
        and filters work as before; a second call does not wrap again; the generated methods
        of the classes made after it have no docstring and keep their lines without columns."""
        r = run_python("-c", SCRIPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(
            r.stdout.splitlines(),
            [
                "True True",
                "_make_attr_tuple_class",
                "FieldsByName FieldsByName BeforeAttributes",
                "True 2 x ['x', 'y'] True",
                "AttributeError True",
                "True count o",
                "Point(x=5, y=2) {'x': 1, 'y': 2} (1, 2) True True",
                "True True",
                "None None True True True True",
            ],
        )
