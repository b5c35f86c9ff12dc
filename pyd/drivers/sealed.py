"""Helper processes that enter a container's files load nothing from them (layer: drivers).

The archive helpers (C{docker cp}, export, layer extraction) C{chroot} into a container's or an
image's files as root and keep running the daemon's code there. Python and glibc both load code
and data lazily, I{by path}, and after the C{chroot} every such path names a file the container
controls:

  - an C{import} searches C{sys.path} (host paths such as C{.../lib/python3.11/lib-dynload},
    which the container can create inside its root with a C{.so} of its own);
  - a codec lookup imports C{encodings.*};
  - an uncaught exception's traceback reads source lines through C{linecache};
  - a user or group I{name} lookup (C{pwd}, C{grp}, C{tarfile.add}) makes glibc read the
    container's C{/etc/nsswitch.conf} and C{dlopen} its C{libnss_*.so.2} (CVE-2019-14271);
  - C{strftime}/C{localtime} read the container's C{/etc/localtime}.

L{preload} imports what a helper needs and caches the codecs I{before} the C{chroot};
L{enter} then seals the import system (only built-in and frozen modules can still be imported,
nothing from a file), installs an exception hook that prints no source lines, and C{chroot}s.
The last two loads are the callers' business: they use numeric owners only and no time zones
(L{pyd.drivers.fdtree}).

Standard library only (helpers start with C{-S}); everything here blocks.
"""

from __future__ import annotations

import codecs
import importlib
import os
import sys
from types import TracebackType

# codecs tarfile, json and the helpers' own I/O can ask for (looked up once here, cached by the
# interpreter: a later lookup imports nothing)
_CODECS = ("utf-8", "ascii", "latin-1", "iso8859-1", "utf-8-sig")
# modules the standard library imports lazily on paths the helpers take
_LAZY = ("zlib", "encodings.utf_8", "encodings.ascii", "encodings.latin_1")


def preload(*modules: str) -> None:
    """Import C{modules} (and the lazy imports of the standard library the helpers reach) and
    look up the codecs they use, while C{sys.path} still names host files."""
    for name in (*_LAZY, *modules):
        importlib.import_module(name)
    for name in _CODECS:
        codecs.lookup(name)


def seal() -> None:
    """From now on C{import} finds built-in and frozen modules only: no file is ever searched
    or loaded (an import of anything not yet loaded raises C{ImportError})."""
    keep = ("BuiltinImporter", "FrozenImporter")
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") in keep]
    sys.path_hooks.clear()
    sys.path_importer_cache.clear()
    sys.path.clear()
    sys.excepthook = _plain_excepthook


def enter(root: str | int) -> None:
    """L{seal}, then C{chroot} into C{root} (a path, or a directory descriptor) and C{chdir("/")}.

    The caller has called L{preload} for everything it uses afterwards.
    """
    seal()
    if isinstance(root, int):
        os.fchdir(root)
        os.chroot(".")
    else:
        os.chroot(root)
    os.chdir("/")


def helper_argv(module: str, *args: str) -> list[str]:
    """The command line of a helper that runs C{module}'s C{main(argv)}: isolated mode (C{-I}:
    no C{PYTHON*} variables, no user site, no working directory on C{sys.path}), no
    site-packages (C{-S}), and only this tree of pyd added to C{sys.path}."""
    tree = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        f"import sys; sys.path.insert(0, {tree!r}); "
        f"from {module} import main; sys.exit(main(sys.argv[1:]))"
    )
    return [sys.executable, "-I", "-S", "-c", code, *args]


def _plain_excepthook(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    """A traceback with file names and line numbers only: reading source lines would open
    files by host paths inside the container's root."""
    lines = ["Traceback (most recent call last):\n"]
    while tb is not None:
        code = tb.tb_frame.f_code
        lines.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_name}\n')
        tb = tb.tb_next
    lines.append(f"{kind.__name__}: {value}\n")
    sys.stderr.write("".join(lines))
    sys.stderr.flush()
