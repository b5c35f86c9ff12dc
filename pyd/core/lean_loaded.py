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
from typing import NamedTuple

from pyd.core.lean import _CO_FUNCTION, _EXTENDED_ARG, _STORE_NAME, _NoDocLoader

# a module's function code units by (qualified name, first line); None where two share both
Units = dict[tuple[str, int], "types.CodeType | None"]


def sets_doc(body: types.CodeType) -> bool:
    """Whether module or class body C{body} stores C{__doc__} (C{STORE_NAME __doc__})."""
    names = body.co_names
    if "__doc__" not in names:
        return False
    index = names.index("__doc__")
    if index > 255:  # an extended argument: not looked for, taken as stored
        return True
    raw = body.co_code
    at = raw.find(bytes((_STORE_NAME, index)))
    while at >= 0:
        if at % 2 == 0 and (at == 0 or raw[at - 2] != _EXTENDED_ARG):
            return True
        at = raw.find(bytes((_STORE_NAME, index)), at + 1)
    return False


def function_units(code: types.CodeType) -> tuple[Units, set[str]]:
    """The function code units (defs, lambdas, comprehensions) nested in module code C{code},
    by qualified name and first line (None where two units share both, as two lambdas on one
    line do: which one a function runs cannot be told from its code); and the qualified names
    of the class bodies in it that do not set C{__doc__} (the loader took their docstring out;
    a body that assigns C{__doc__} itself still does)."""
    units: Units = {}
    undocumented: set[str] = set()
    stack = [code]
    while stack:
        for const in stack.pop().co_consts:
            if type(const) is types.CodeType:
                if const.co_flags & _CO_FUNCTION:
                    key = (const.co_qualname, const.co_firstlineno)
                    units[key] = None if key in units else const
                elif not sets_doc(const):
                    undocumented.add(const.co_qualname)
                stack.append(const)
    return units, undocumented


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


class _Stripped(NamedTuple):
    """A module loaded from source, as L{_NoDocLoader} loads it."""

    module: types.ModuleType
    units: Units  # function code units by qualified name and first line
    undocumented: set[str]  # class bodies that no longer set __doc__
    module_doc: bool  # whether the module body still sets __doc__


def _stripped_by_file() -> dict[str, _Stripped]:
    """The modules loaded from Python source by the interpreter's own loader, by file."""
    found: dict[str, _Stripped] = {}
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
            units, undocumented = function_units(code)
            found[loader.path] = _Stripped(module, units, undocumented, sets_doc(code))
    return found


def strip_loaded() -> int:
    """Give the functions of the modules loaded from source so far the code L{_NoDocLoader}
    would have loaded (no docstring, no columns), and drop the docstrings it drops from their
    modules, classes and functions (also the copies C{functools.wraps} made; a C{__doc__} a
    module or class body assigns itself stays, as the loader keeps it). A function whose code has
    no unique counterpart of the same shape in the current source (two lambdas on one line, a
    file edited since) keeps its code. Returns how many functions changed.

    Call it before the daemon's own imports: they reuse what it frees."""
    by_file = _stripped_by_file()
    classes: dict[str, set[str]] = {}  # by module name: the classes whose docstring goes
    for stripped in by_file.values():
        classes[stripped.module.__name__] = stripped.undocumented
        if not stripped.module_doc and type(stripped.module.__dict__.get("__doc__")) is str:
            stripped.module.__doc__ = None
    changes: list[tuple[types.FunctionType, types.CodeType]] = []
    dropped: dict[int, str] = {}  # docstrings taken out, by id (held here while compared)
    for obj in gc.get_objects():
        if type(obj) is types.FunctionType:
            old = obj.__code__
            found = by_file.get(old.co_filename)
            new = found.units.get((old.co_qualname, old.co_firstlineno)) if found else None
            if new is None or not same_unit(old, new):
                continue
            changes.append((obj, new))
            doc = old.co_consts[0] if old.co_consts else None
            if type(doc) is str and new.co_consts[0] is None:
                dropped[id(doc)] = doc
        elif (
            isinstance(obj, type)
            and obj.__qualname__ in classes.get(obj.__dict__.get("__module__"), ())  # type: ignore[arg-type]
            and type(obj.__dict__.get("__doc__")) is str
        ):
            with contextlib.suppress(TypeError, AttributeError):  # a type that refuses
                obj.__doc__ = None
    for function, new in changes:
        if id(function.__doc__) in dropped:
            function.__doc__ = None
        function.__code__ = new
    return len(changes)
