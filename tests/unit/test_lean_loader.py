"""Modules imported after L{pyd.core.lean.drop_docstrings} carry no docstrings and behave as
before; L{pyd.core.lean.forget}, L{pyd.core.lean.lazy_module} and L{pyd.core.lean.stand_in}
(pyd/core/lean.py)."""

from __future__ import annotations

import os
import types
import unittest

from pyd.core.lean import stand_in, without_docstrings
from tests.helpers.pychild import run_python

SOURCE = '''"""module doc"""
from __future__ import annotations

import zope.interface

x: int = 1


class Documented:
    """class doc"""

    y: int = 2

    def method(self) -> object:
        """method doc"""
        return super().__repr__


class Annotated:
    z: int
    """an expression after the first statement: no docstring"""


def same_string():
    "same"
    return "same"


def comprehension():
    return [c + "s" for c in "ab"]


lam = lambda: "l"  # noqa: E731


def nested():
    """outer doc"""

    class Inner:
        """inner doc"""

        __slots__ = ()

    return Inner


class IThing(zope.interface.Interface):
    """an interface: its class body must not set __doc__ (zope refuses a concrete one)"""

    def act() -> None:
        """what it does"""
'''


def run(code: types.CodeType) -> dict[str, object]:
    ns: dict[str, object] = {"__name__": "m"}
    exec(code, ns)  # the test's own source
    return ns


class WithoutDocstringsTests(unittest.TestCase):
    def test_docstrings_are_dropped_and_everything_else_kept(self) -> None:
        """Module, class, method and nested docstrings become None, as under -OO; a string the
        body also uses stays; comprehensions, lambdas, annotations and zope interfaces work."""
        plain = run(compile(SOURCE, "m.py", "exec"))
        lean = run(without_docstrings(compile(SOURCE, "m.py", "exec")))
        self.assertEqual(plain["__doc__"], "module doc")
        self.assertNotIn("__doc__", lean)  # a module's __doc__ stays None
        doc, ann = lean["Documented"], lean["Annotated"]
        assert isinstance(doc, type) and isinstance(ann, type)
        self.assertIsNone(doc.__doc__)
        self.assertIsNone(doc.__dict__["method"].__doc__)
        self.assertEqual(doc.__annotations__, {"y": "int"})
        self.assertTrue(callable(doc().method()))
        self.assertIsNone(ann.__doc__)
        same, comp, lam, nested = (
            lean[n] for n in ("same_string", "comprehension", "lam", "nested")
        )
        assert callable(same) and callable(comp) and callable(lam) and callable(nested)
        self.assertEqual((same(), same.__doc__), ("same", "same"))
        self.assertEqual(comp(), ["as", "bs"])
        self.assertEqual(lam(), "l")
        self.assertIsNone(nested.__doc__)
        self.assertIsNone(nested().__doc__)
        iface = lean["IThing"]
        self.assertIsNone(iface.__doc__ or None)  # type: ignore[attr-defined]
        self.assertEqual(list(iface.names()), ["act"])  # type: ignore[attr-defined]
        self.assertEqual(lean["x"], plain["x"])


SCRIPT = """
import sys
from pyd.core import lean

import json  # imported before: keeps its docstrings
lean.drop_docstrings()
import pyd.daemon.memory
import sqlalchemy.sql.compiler
from sqlalchemy.sql import compiler

print(json.__doc__ is not None, pyd.daemon.memory.__doc__ is None,
      pyd.daemon.memory.Settler.__doc__ is None, compiler.SQLCompiler.__doc__ is None,
      type(pyd.daemon.memory.__loader__).__name__, pyd.daemon.memory.__spec__.origin.endswith(".py"))

import http
import http.cookiejar
sys.modules["http.cookiejar"].__dict__["probe"] = 1
lean.forget(("http.cookiejar",))
print("http.cookiejar" in sys.modules, hasattr(http, "cookiejar"))
lazy = lean.lazy_module("http.cookiejar")
import http.cookiejar as again
from http import cookiejar as again2
print(type(lazy).__name__, http.cookiejar is lazy, again is lazy, again2 is lazy)
print(lazy.CookieJar.__name__, hasattr(lazy, "probe"), type(lazy).__name__)
"""


class LeanLoaderProcessTests(unittest.TestCase):
    def test_loader_forget_and_lazy_module(self) -> None:
        """In a fresh process: modules imported after drop_docstrings have none (through a
        source loader, so importlib.resources and inspect still work), those imported before
        keep theirs; a forgotten module is gone from sys.modules and its package; a lazy module
        is registered unexecuted, stays so through import statements, and runs anew on its first
        attribute."""
        r = run_python("-c", SCRIPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["True", "True", "True", "True", "_NoDocLoader", "True"])
        self.assertEqual(lines[1].split(), ["False", "False"])
        self.assertEqual(lines[2].split(), ["LazyModule", "True", "True", "True"])
        self.assertEqual(lines[3].split(), ["CookieJar", "False", "module"])


CACHE_SCRIPT = """
import os, sys
sys.path.insert(0, sys.argv[1])
from pyd.core import lean
lean.drop_docstrings()
import cachedmod
print(cachedmod.VALUE, cachedmod.f.__doc__, cachedmod.__doc__)
"""


class NoDocCacheTests(unittest.TestCase):
    def test_stripped_code_is_cached_and_follows_the_source(self) -> None:
        """The first import writes __pycache__/<mod>.*.nodoc.pyc; the next process loads it
        (the docstrings still gone); an edited source is loaded anew, not the stale cache; a
        corrupt cache file is ignored."""
        import tempfile

        d = tempfile.mkdtemp(prefix="pyd-nodoc-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d))
        src = os.path.join(d, "cachedmod.py")

        def write(value: int) -> None:
            with open(src, "w") as f:
                f.write(f'"""mod doc"""\nVALUE = {value}\n\ndef f():\n    """f doc"""\n')

        def load() -> str:
            r = run_python("-c", CACHE_SCRIPT, d)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.strip()

        write(1)
        self.assertEqual(load(), "1 None None")
        cached = [n for n in os.listdir(os.path.join(d, "__pycache__")) if ".nodoc." in n]
        self.assertEqual(len(cached), 1)
        path = os.path.join(d, "__pycache__", cached[0])
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(load(), "1 None None")
        write(22)  # another size: the cache no longer matches
        self.assertEqual(load(), "22 None None")
        with open(path, "rb") as f:
            self.assertNotEqual(f.read(), data)  # written again for the new source
        with open(path, "r+b") as f:
            f.seek(24)
            f.write(b"\xff\xff\xff\xff")  # corrupt the code
        self.assertEqual(load(), "22 None None")


class StandInTests(unittest.TestCase):
    def test_stand_in_only_while_the_block_runs(self) -> None:
        """What is imported in the block takes the stand-in's names; afterwards the name is not
        registered (the real module, here none, would load); an imported module is left alone."""
        import json
        import sys

        marker = type("Marker", (), {})
        with stand_in("pyd_t_no_such_module", Marker=marker):
            ns: dict[str, object] = {}
            exec("from pyd_t_no_such_module import Marker", ns)
        self.assertIs(ns["Marker"], marker)
        self.assertNotIn("pyd_t_no_such_module", sys.modules)
        with self.assertRaises(ModuleNotFoundError):
            exec("import pyd_t_no_such_module", {})
        with stand_in("json", dumps=None):
            self.assertIs(sys.modules["json"], json)
        self.assertIsNotNone(json.dumps)


class WithoutColumnsTests(unittest.TestCase):
    def test_lines_kept_columns_dropped(self) -> None:
        """Every code unit keeps its line (also in nested code and where there is none), the
        columns are gone, the table is smaller, and a traceback still names the line."""
        import sys
        import traceback

        from pyd.core import lean
        from pyd.core.lean import without_columns

        if not lean._COLUMNS_FORMAT:
            self.skipTest(f"location table format of Python {sys.version_info[:2]} not known")
        src = (
            SOURCE
            + "\n\ndef fails(a):\n    b = a + 1\n    return [1 / (b - b) for _ in range(2)]\n"
        )
        top = compile(src, "m.py", "exec")
        new = without_columns(top)

        def walk(code: types.CodeType) -> list[types.CodeType]:
            out = [code]
            for k in code.co_consts:
                if type(k) is types.CodeType:
                    out.extend(walk(k))
            return out

        old_codes, new_codes = walk(top), walk(new)
        self.assertEqual(len(old_codes), len(new_codes))
        for a, b in zip(old_codes, new_codes, strict=True):
            self.assertEqual(
                [p[0] for p in a.co_positions()], [p[0] for p in b.co_positions()], a.co_name
            )
            self.assertTrue(all(p[2] is None for p in b.co_positions()))
        self.assertLess(sum(len(c.co_linetable) for c in new_codes),
                        sum(len(c.co_linetable) for c in old_codes) / 2)  # fmt: skip
        ns = run(new)
        try:
            ns["fails"](1)  # type: ignore[operator]
        except ZeroDivisionError:
            frames = traceback.extract_tb(sys.exc_info()[2])
        self.assertEqual(frames[-1].lineno, src.splitlines().index(
            "    return [1 / (b - b) for _ in range(2)]") + 1)  # fmt: skip
