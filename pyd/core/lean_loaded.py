"""Docstrings and location columns out of the modules imported before the daemon's loader was
installed (layer: core).

L{pyd.core.lean.drop_docstrings} loads every module imported after it without docstrings and
without the columns of its location table. twistd imports ~270 modules before the plugin runs
(Twisted's application, logging and plugin modules, asyncio, email, attrs, zope.interface,
typing, pyd's options and create-spec records...): L{strip_loaded} gives each of their functions
the code that loader would have produced, and their modules and classes lose their docstrings,
as C{python -OO} would have them. ~1.3 MiB of a fresh daemon, kept for its life and never read
(docs/performance.md, issue 21). The stripped code is the loader's own cache of each module
(C{__pycache__/*.nodoc.pyc}, compiled and stripped at the first start).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.machinery
import sys
import types

from pyd.core.lean import _CO_FUNCTION, _NoDocLoader

# a module's function code units by (qualified name, first line); None where two share both
Units = dict[tuple[str, int], "types.CodeType | None"]


def function_units(code: types.CodeType) -> Units:
    """The function code units (defs, lambdas, comprehensions) nested in module code C{code},
    by qualified name and first line; None where two units share both (two lambdas on one
    line): which one a function runs cannot be told from its code."""
    units: Units = {}
    stack = [code]
    while stack:
        for const in stack.pop().co_consts:
            if type(const) is types.CodeType:
                if const.co_flags & _CO_FUNCTION:
                    key = (const.co_qualname, const.co_firstlineno)
                    units[key] = None if key in units else const
                stack.append(const)
    return units


def same_unit(old: types.CodeType, new: types.CodeType) -> bool:
    """Whether C{new} is C{old} compiled from the same source, but for its docstring and
    location table (what a function's C{__code__} may be replaced with)."""
    return (
        old.co_names == new.co_names
        and old.co_varnames == new.co_varnames
        and old.co_freevars == new.co_freevars
        and old.co_cellvars == new.co_cellvars
        and old.co_flags == new.co_flags
        and old.co_argcount == new.co_argcount
        and old.co_posonlyargcount == new.co_posonlyargcount
        and old.co_kwonlyargcount == new.co_kwonlyargcount
        and old.co_stacksize == new.co_stacksize
        and old.co_exceptiontable == new.co_exceptiontable
        and len(old.co_consts) == len(new.co_consts)
    )


def _units_by_file() -> dict[str, tuple[types.ModuleType, Units]]:
    """The modules loaded from Python source by the interpreter's own loader, by file, with
    their function units as L{_NoDocLoader} loads them."""
    found: dict[str, tuple[types.ModuleType, Units]] = {}
    for name, module in list(sys.modules.items()):
        if type(module) is not types.ModuleType:  # lazy and stand-in modules, proxies
            continue
        loader = getattr(module.__dict__.get("__spec__"), "loader", None)
        if type(loader) is not importlib.machinery.SourceFileLoader:
            continue
        try:
            code = _NoDocLoader(name, loader.path).get_code(name)
        except (ImportError, OSError, SyntaxError, ValueError):
            continue
        if code is not None:
            found[loader.path] = (module, function_units(code))
    return found


def strip_loaded() -> int:
    """Give the functions of the modules loaded from source so far the code L{_NoDocLoader}
    would have loaded (no docstring, no columns), and drop their modules', classes' and
    functions' docstrings (also the copies C{functools.wraps} made). A function whose code has
    no unique counterpart of the same shape in the current source (two lambdas on one line, a
    file edited since) keeps its code. Returns how many functions changed.

    Call it before the daemon's own imports: they reuse what it frees."""
    by_file = _units_by_file()
    names = set()
    for module, _units in by_file.values():
        names.add(module.__name__)
        if type(module.__dict__.get("__doc__")) is str:
            module.__doc__ = None
    changes: list[tuple[types.FunctionType, types.CodeType]] = []
    dropped: dict[int, str] = {}  # docstrings taken out, by id (held here while compared)
    for obj in gc.get_objects():
        if type(obj) is types.FunctionType:
            old = obj.__code__
            found = by_file.get(old.co_filename)
            new = found[1].get((old.co_qualname, old.co_firstlineno)) if found else None
            if new is None or not same_unit(old, new):
                continue
            changes.append((obj, new))
            doc = old.co_consts[0] if old.co_consts else None
            if type(doc) is str and new.co_consts[0] is None:
                dropped[id(doc)] = doc
        elif (
            isinstance(obj, type)
            and obj.__dict__.get("__module__") in names
            and type(obj.__dict__.get("__doc__")) is str
        ):
            with contextlib.suppress(TypeError, AttributeError):  # a type that refuses
                obj.__doc__ = None
    for function, new in changes:
        if id(function.__doc__) in dropped:
            function.__doc__ = None
        function.__code__ = new
    return len(changes)
