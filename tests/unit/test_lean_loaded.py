"""The modules imported before the daemon's loader lose their docstrings and location columns
in place (pyd/core/lean_loaded.py), and their functions behave as before."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
import unittest

from tests.helpers.pychild import run_python

EARLY = textwrap.dedent(
    '''
    """module doc"""
    import functools


    def f(x):
        """f doc"""
        y = x * 2
        return y + 1


    class C:
        """class doc"""

        class Inner:
            """inner class doc"""

        def m(self):
            """m doc"""
            return [i for i in range(3)]


    class Explicit:
        __doc__ = MESSAGE = "kept, as python -OO keeps it"


    def outer():
        """outer doc"""

        def inner(v):
            """inner doc"""
            return v - 1

        return inner


    made = outer()


    @functools.wraps(f)
    def wrapped(x):
        return f(x)


    pair = (lambda: "a", lambda: "b")


    def boom():
        a = 1
        return a / 0


    def edited():
        return "before"
    '''
)

SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import early
from pyd.core import lean, lean_loaded

def run():
    return (early.f(2), early.C().m(), early.made(5), early.outer()(7), early.wrapped(3),
            early.pair[0](), early.pair[1](), early.edited())

before = run()
codes = (early.pair[0].__code__, early.pair[1].__code__, early.edited.__code__)
def lines(code):  # the line of each code unit
    return [line for start, end, line in code.co_lines() for _ in range(start, end, 2)]

f_lines = lines(early.f.__code__)
with open(early.__file__) as source:  # edited after it was imported
    text = source.read().replace('return "before"', 'return "after" + str(len([]))')
with open(early.__file__, "w") as source:
    source.write(text)
lean.drop_docstrings()
changed = lean_loaded.strip_loaded()
print(changed >= 6, run() == before)
print(early.__doc__, early.f.__doc__, early.C.__doc__, early.C.m.__doc__, early.made.__doc__,
      early.wrapped.__doc__, early.C.Inner.__doc__, early.Explicit.__doc__ == early.Explicit.MESSAGE)
code = early.f.__code__
print(all(p[2] is None and p[3] is None for p in code.co_positions()), lines(code) == f_lines)
print(*(c is n for c, n in zip(codes, (early.pair[0].__code__, early.pair[1].__code__, early.edited.__code__))))
try:
    early.boom()
except ZeroDivisionError as e:
    tb = e.__traceback__.tb_next
    print(tb.tb_frame.f_code.co_name, tb.tb_lineno - tb.tb_frame.f_code.co_firstlineno)
"""


class StripLoadedTests(unittest.TestCase):
    def test_loaded_modules_lose_docstrings_and_columns(self) -> None:
        """In a fresh process, a module imported by the plain loader: after strip_loaded its
        module, class, nested class, function, closure and functools.wraps docstrings are None
        (a __doc__ a class body assigns itself stays); its functions
        return what they did; their location tables keep every line without columns, so a
        traceback still names the line; two lambdas on one line and a function whose source
        was edited since the import keep their code."""
        d = tempfile.mkdtemp(prefix="pyd-t-loaded-")
        self.addCleanup(shutil.rmtree, d)
        with open(os.path.join(d, "early.py"), "w") as f:
            f.write(EARLY)
        for _ in range(2):  # the second process reads the stripped code from the cache
            r = run_python("-c", SCRIPT, d)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(
                r.stdout.splitlines(),
                [
                    "True True",
                    "None None None None None None None True",
                    "True True",
                    "True True True",
                    "boom 2",
                ],
            )
            with open(os.path.join(d, "early.py"), "w") as f:
                f.write(EARLY)  # as it was, for the second round
