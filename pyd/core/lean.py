"""Packages whose C{__init__} imports far more than the daemon uses, registered bare: their
submodules import as usual, the C{__init__} runs only if something asks the package itself for
a name (layer: core).

Why: C{werkzeug}'s C{__init__} imports its development server and test client (with
C{http.cookiejar}, C{werkzeug.serving}, C{werkzeug.test}...: ~1 MB resident) for the
C{run_simple}, C{Client}, C{Request} and C{Response} it re-exports; Klein and pyd import only
C{werkzeug.routing} and C{werkzeug.exceptions}. pyd's own packages that re-export what their
submodules define, but are used only by some requests, name those without importing them
(L{names_from_submodules}: the registry client, the distribution service). A module a
library imports for names it uses only on a path pyd never takes can be a L{stand_in} while
that library is imported (Twisted's Perspective Broker under twisted.web's server).
"""

from __future__ import annotations

import contextlib
import dis
import importlib
import importlib.machinery
import importlib.util
import inspect
import linecache
import marshal
import os
import struct
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any


def bare_package(name: str) -> None:
    """Register package C{name} without running its C{__init__} (a no-op once it is imported
    or when it is not installed). The first access to a name of the package that is not one of
    its submodules (C{from werkzeug import Client}, C{werkzeug.__version__}) runs the real
    C{__init__} then, so that other users in the process see the whole package as usual."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    pkg = types.ModuleType(name)
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    pkg.__loader__ = spec.loader
    pkg.__file__ = spec.origin
    pkg.__package__ = name
    loader = spec.loader

    def lookup(attr: str) -> Any:
        # A submodule (`from werkzeug import routing`): import just that one.
        if not attr.startswith("__") and importlib.util.find_spec(f"{name}.{attr}"):
            return importlib.import_module(f"{name}.{attr}")
        # Anything else: the whole package, as a plain `import name` would have loaded it.
        if "__getattr__" in pkg.__dict__:
            del pkg.__dict__["__getattr__"]
            loader.exec_module(pkg)
        return pkg.__dict__[attr] if attr in pkg.__dict__ else getattr(pkg, attr)

    pkg.__dict__["__getattr__"] = lookup
    sys.modules[name] = pkg


def names_from_submodules(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module C{__getattr__} (PEP 562) for package C{package}, whose C{__init__} names what
    its submodules define without importing them: the first time a name is asked of the package
    (C{from package import Name}), the submodule C{where[name]} is imported and the name kept
    on the package."""

    def lookup(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return lookup


class LazyMapping(Mapping[str, Any]):
    """A read-only mapping whose content C{load()} returns the first time it is read (for a
    module's table whose module is forgotten until something reads it)."""

    def __init__(self, load: Callable[[], Mapping[str, Any]]) -> None:
        self._load = load
        self._data: Mapping[str, Any] | None = None

    def _loaded(self) -> Mapping[str, Any]:
        if self._data is None:
            self._data = self._load()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._loaded()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


@contextmanager
def stand_in(name: str, **names: Any) -> Iterator[None]:
    """While the block runs, module C{name} is a stand-in holding only C{names} (also as its
    package's attribute), for a module imported in the block that takes those names from it
    but uses them on a path the daemon never takes. Afterwards C{name} is unregistered (a later
    import loads the real module); what was imported keeps the stand-in's objects. A no-op
    when C{name} is imported already."""
    if name in sys.modules:
        yield
        return
    module = types.ModuleType(name)
    module.__dict__.update(names)
    sys.modules[name] = module
    parent_name, _, child = name.rpartition(".")
    parent = sys.modules.get(parent_name) if parent_name else None
    if parent is not None:
        # `from package import name` asks the package for the attribute
        parent.__dict__[child] = module
    try:
        yield
    finally:
        if sys.modules.get(name) is module:
            del sys.modules[name]
        if parent is not None and parent.__dict__.get(child) is module:
            del parent.__dict__[child]


def _spec_unimported(name: str) -> importlib.machinery.ModuleSpec | None:
    """The spec of module C{name}, found without running its parent packages."""
    finder: Any = _NoDocFinder if _NoDocFinder in sys.meta_path else importlib.machinery.PathFinder
    path = None
    spec = None
    for depth in range(1, name.count(".") + 2):
        spec = finder.find_spec(".".join(name.split(".")[:depth]), path)
        if spec is None:
            return None
        path = spec.submodule_search_locations
    return spec


_lazy_lock = threading.RLock()


class LazyModule(types.ModuleType):
    """A module registered by L{lazy_module} that has not run yet. Its first attribute that
    is not there runs it in place (it becomes a plain module). The import system's own
    questions (C{__spec__}, a plain module's C{__path__}) do not run it, so C{import name}
    and C{from package import name} leave it unexecuted, unlike L{importlib.util.LazyLoader}'s
    modules, whose C{__spec__} already runs them."""

    def __getattr__(self, attr: str) -> Any:
        if attr == "__path__":  # is it a package? (a package's spec has set it)
            raise AttributeError(attr)
        with _lazy_lock:
            if type(self) is LazyModule:
                if self.__dict__.get("__lazy_running__"):  # its own code, while it runs
                    raise AttributeError(attr)
                self.__dict__["__lazy_running__"] = True
                try:
                    self.__spec__.loader.exec_module(self)  # type: ignore[union-attr]  # set by lazy_module
                finally:
                    del self.__dict__["__lazy_running__"]
                self.__class__ = types.ModuleType  # type: ignore[assignment]  # it has run: a plain module
        return getattr(self, attr)


def lazy_module(name: str) -> types.ModuleType:
    """Register module C{name} unexecuted (a L{LazyModule}): C{import name} costs nothing
    until one of its names is used, also when its package imports it (its package is not
    run by this either). A module already imported is returned as it is."""
    if name in sys.modules:
        return sys.modules[name]
    spec = _spec_unimported(name)
    if spec is None or spec.loader is None:
        raise ImportError(name)
    module = importlib.util.module_from_spec(spec)
    module.__class__ = LazyModule
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module


def forget(names: tuple[str, ...]) -> list[str]:
    """Remove the modules C{names} and their submodules from the import system and from their
    parent packages (a later import loads them again). What they hold is freed once nothing
    else refers to it: the caller rebinds the other references first (L{lazy_module}).
    Returns the names removed."""
    gone = [m for m in list(sys.modules) if any(m == n or m.startswith(n + ".") for n in names)]
    for m in sorted(gone, reverse=True):
        del sys.modules[m]
        parent, _, child = m.rpartition(".")
        owner = sys.modules.get(parent) if parent else None
        if owner is not None and owner.__dict__.get(child) is not None:
            delattr(owner, child)
    return gone


_CO_FUNCTION = inspect.CO_OPTIMIZED | inspect.CO_NEWLOCALS
_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]
_NOP = dis.opmap["NOP"]
_LOAD_CONST = dis.opmap["LOAD_CONST"]
_LOAD_NAME = dis.opmap["LOAD_NAME"]
_STORE_NAME = dis.opmap["STORE_NAME"]
# what a module or class body may do before its docstring
_PROLOGUE = frozenset(
    dis.opmap[name]
    for name in ("RESUME", "MAKE_CELL", "COPY_FREE_VARS", "SETUP_ANNOTATIONS", "NOP")
    if name in dis.opmap
)


def _const_used(raw: bytes, index: int) -> int:
    """How many instructions of bytecode C{raw} read constant C{index} (< 256)."""
    used = 0
    for op in dis.hasconst:
        pattern = bytes((op, index))
        at = raw.find(pattern)
        while at >= 0:
            if at % 2 == 0 and (at == 0 or raw[at - 2] != _EXTENDED_ARG):
                used += 1
            at = raw.find(pattern, at + 1)
    return used


def _body_doc(code: types.CodeType, raw: bytes) -> int | None:
    """Where a module or class body stores its docstring, the first thing it does after its
    prologue (C{LOAD_CONST k; STORE_NAME __doc__}): the offset of that pair, or None."""
    names = code.co_names
    if "__doc__" not in names:
        return None
    at = 0
    while at + 4 <= len(raw):
        op, pair = raw[at], raw[at + 2] == _STORE_NAME
        target = names[raw[at + 3]] if pair and raw[at + 3] < len(names) else None
        if op == _LOAD_CONST and target == "__doc__":
            index = raw[at + 1]
            if isinstance(code.co_consts[index], str) and _const_used(raw, index) == 1:
                return at
            return None
        if (op == _LOAD_NAME and target == "__module__") or (
            op == _LOAD_CONST and target == "__qualname__"
        ):
            at += 4
        elif op in _PROLOGUE:
            at += 2
        else:
            return None
    return None


def _nested(
    consts: tuple[Any, ...], transform: Callable[[types.CodeType], types.CodeType]
) -> list[Any] | None:
    """C{consts} with C{transform} applied to the code objects among them (functions, classes,
    comprehensions defined in the code), or None when it changed none."""
    new: list[Any] | None = None
    for i, const in enumerate(consts):
        if type(const) is types.CodeType:
            changed = transform(const)
            if changed is not const:
                new = new or list(consts)
                new[i] = changed
    return new


def without_docstrings(code: types.CodeType) -> types.CodeType:
    """C{code} without the docstrings of its module or class body and of every function in
    it, as C{python -OO} compiles them (asserts stay): a def's C{__doc__} is None, a body
    does not set C{__doc__}."""
    consts = code.co_consts
    new = _nested(consts, without_docstrings)
    if code.co_flags & _CO_FUNCTION:
        # A def's first constant is its docstring or None (the compiler puts it there);
        # comprehensions and lambdas have none. The same string used in the body is kept.
        if (
            consts
            and type(consts[0]) is str
            and code.co_name[0] != "<"
            and _const_used(code.co_code, 0) == 0
        ):
            new = new or list(consts)
            new[0] = None
        return code if new is None else code.replace(co_consts=tuple(new))
    raw = code.co_code
    at = _body_doc(code, raw)
    if at is None:
        return code if new is None else code.replace(co_consts=tuple(new))
    new = new or list(consts)
    new[raw[at + 1]] = None
    # the store becomes two no-ops: same instruction count, line table and stack
    raw = raw[:at] + bytes((_NOP, 0, _NOP, 0)) + raw[at + 4 :]
    return code.replace(co_consts=tuple(new), co_code=raw)


# A cached docstring-free module: the interpreter's magic, this tag, the source's mtime (ns)
# and size, then the marshalled code. Anything else (another Python, an edited source) is
# ignored and written again.
_TAG = b"PYD2"  # 2: without columns as well
_HEADER = struct.Struct("<4s4sQQ")


def _nodoc_path(source: str) -> str | None:
    try:
        return importlib.util.cache_from_source(source)[: -len(".pyc")] + ".nodoc.pyc"
    except (NotImplementedError, ValueError):
        return None


def _read_nodoc(cached: str, st: os.stat_result) -> types.CodeType | None:
    try:
        with open(cached, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < _HEADER.size:
        return None
    magic, tag, mtime, size = _HEADER.unpack_from(data)
    if (magic, tag, mtime, size) != (importlib.util.MAGIC_NUMBER, _TAG, st.st_mtime_ns, st.st_size):
        return None
    try:
        # as trusted as the source beside it: the interpreter loads its own .pyc the same way
        code = marshal.loads(data[_HEADER.size :])  # noqa: S302
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None


def _write_nodoc(cached: str, st: os.stat_result, code: types.CodeType) -> None:
    data = _HEADER.pack(importlib.util.MAGIC_NUMBER, _TAG, st.st_mtime_ns, st.st_size)
    tmp = f"{cached}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data + marshal.dumps(code))
        os.replace(tmp, cached)
    except OSError:  # a read-only tree: compiled and stripped again at the next start
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# The location table format of PEP 657 (CPython's Objects/locations.md), the same in 3.11-3.13.
_COLUMNS_FORMAT = (3, 11) <= sys.version_info[:2] <= (3, 13)
_NO_COLUMNS = 13  # entry code: a line delta, no columns
_NO_LOCATION = 15  # entry code: no location at all
_NO_COLUMNS_ENTRY = 0x80 | (_NO_COLUMNS << 3)
_NO_LOCATION_ENTRY = 0x80 | (_NO_LOCATION << 3)


def _svarint(value: int) -> bytes:
    if 0 <= value < 32:
        return _SMALL_DELTAS[value]
    value = ((-value) << 1) | 1 if value < 0 else value << 1
    out = bytearray()
    while value >= 64:
        out.append(0x40 | (value & 0x3F))
        value >>= 6
    out.append(value)
    return bytes(out)


_SMALL_DELTAS = tuple(bytes((value << 1,)) for value in range(32))


def without_columns(code: types.CodeType) -> types.CodeType:
    """C{code} with a location table that keeps the lines but no columns, as C{python -X
    no_debug_ranges} compiles it (tracebacks show the line without the carets under the
    expression): the column entries are ~1.5 MB of a daemon's code objects, kept for its life.
    Unchanged on a Python whose table format this does not know."""
    if not _COLUMNS_FORMAT:
        return code
    new = _nested(code.co_consts, without_columns)
    table = bytearray()
    prev = code.co_firstlineno
    # co_lines gives the code's ranges (one per entry of the table, None: no location); the
    # ranges of one line are merged, then written as entries of at most 8 code units, a run's
    # later entries with a line delta of 0
    runs: list[list[Any]] = []
    for start, end, line in code.co_lines():
        if runs and runs[-1][0] == line:
            runs[-1][1] += end - start
        else:
            runs.append([line, end - start])
    for line, size in runs:
        units = size // 2
        while units > 0:
            length = min(units, 8)
            units -= length
            if line is None:
                table.append(_NO_LOCATION_ENTRY | (length - 1))
            else:
                table.append(_NO_COLUMNS_ENTRY | (length - 1))
                table += _svarint(line - prev)
                prev = line
    kwargs: dict[str, Any] = {"co_linetable": bytes(table)}
    if new is not None:
        kwargs["co_consts"] = tuple(new)
    return code.replace(**kwargs)


class _NoDocLoader(importlib.machinery.SourceFileLoader):
    """A source loader whose code objects carry no docstrings.

    The stripped code is cached beside the interpreter's own (C{__pycache__/*.nodoc.pyc}),
    checked against the source's mtime and size: stripping every code object of the ~900
    modules a daemon imports cost ~0.1 s of each start, and compiling them too (where
    C{PYTHONDONTWRITEBYTECODE} leaves no C{.pyc}, as for a tree on PYTHONPATH) ~0.35 s.
    """

    def get_code(self, fullname: str) -> types.CodeType | None:
        # attrs keeps the source of the methods it generates in linecache; emptied before each
        # module, the next module's objects reuse those blocks (emptied only at the end of
        # start-up, the holes stayed: 0.9 MiB, docs/performance.md "memory at start")
        linecache.clearcache()
        source = self.get_filename(fullname)
        cached = _nodoc_path(source)
        try:
            st = os.stat(source)
        except OSError:
            st = None
        if cached is not None and st is not None:
            code = _read_nodoc(cached, st)
            if code is not None:
                return code
        code = super().get_code(fullname)
        if code is None:
            return None
        code = without_columns(without_docstrings(code))
        if cached is not None and st is not None:
            _write_nodoc(cached, st, code)
        return code


class _NoDocFinder:
    """Finds what the path finder finds; Python source is loaded by L{_NoDocLoader}."""

    @staticmethod
    def find_spec(
        fullname: str, path: Any = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        loader = spec.loader if spec is not None else None
        if type(loader) is importlib.machinery.SourceFileLoader:
            assert spec is not None
            spec.loader = _NoDocLoader(loader.name, loader.path)
        return spec


def drop_docstrings() -> None:
    """Load every Python module imported from now on without its docstrings (idempotent).

    Why: docstrings are ~4 MB of a fresh daemon's heap (SQLAlchemy's alone 1.1 MB), kept for
    the process's life and never read by it. C{python -OO} would drop them but also the
    asserts, and cannot be asked for from inside C{twistd}."""
    if not any(f is _NoDocFinder for f in sys.meta_path):
        sys.meta_path.insert(0, _NoDocFinder)
