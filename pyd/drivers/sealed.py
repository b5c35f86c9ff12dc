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

Should code of the container run anyway, the helper holds no way back out: L{close_inherited}
closes every descriptor it was not meant to get, and L{drop_capabilities} leaves only the file
capabilities its operation needs (no C{CAP_SYS_CHROOT} to break out of the C{chroot}, no
C{CAP_SYS_ADMIN} to mount a C{/proc}, no C{CAP_SYS_PTRACE}), with C{no_new_privs} set.

Standard library only (helpers start with C{-S}); everything here blocks.
"""

from __future__ import annotations

import codecs
import ctypes
import errno
import importlib
import os
import sys
from collections.abc import Iterable
from types import TracebackType

# codecs tarfile, json and the helpers' own I/O can ask for (looked up once here, cached by the
# interpreter: a later lookup imports nothing)
_CODECS = ("utf-8", "ascii", "latin-1", "iso8859-1", "utf-8-sig")
# modules the standard library imports lazily on paths the helpers take
_LAZY = ("zlib", "encodings.utf_8", "encodings.ascii", "encodings.latin_1")


# linux/capability.h
CAP_CHOWN = 0
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
CAP_FOWNER = 3
CAP_FSETID = 4
CAP_SYS_ADMIN = 21
CAP_MKNOD = 27
CAP_SETFCAP = 31
# reading any file of the tree (export, cp out, stat)
READ_CAPS = (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)
# extracting a tar with full fidelity (owners, modes, devices, file capabilities); trusted.*
# xattrs (overlayfs whiteouts of a layer) need CAP_SYS_ADMIN
EXTRACT_CAPS = (
    *READ_CAPS,
    CAP_CHOWN,
    CAP_FOWNER,
    CAP_FSETID,
    CAP_MKNOD,
    CAP_SETFCAP,
    CAP_SYS_ADMIN,
)
# extracting into a container (cp in): no trusted.* xattrs (they fail with EPERM, ignored as
# dockerd ignores them), so no CAP_SYS_ADMIN (which could mount a /proc)
CP_IN_CAPS = tuple(c for c in EXTRACT_CAPS if c != CAP_SYS_ADMIN)
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


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


def close_inherited(keep: Iterable[int] = (0, 1, 2)) -> None:
    """Close every descriptor but C{keep} (the spawner closes them too: this makes sure)."""
    top = os.sysconf("SC_OPEN_MAX")
    low = 0
    for fd in sorted(set(keep)):
        if fd > low:  # closerange(n, n) would close everything from n on
            os.closerange(low, fd)
        low = fd + 1
    if top > low:
        os.closerange(low, top)


def drop_capabilities(keep: Iterable[int]) -> None:
    """Keep only the capabilities C{keep} (effective and permitted; none inheritable, none in
    the bounding or ambient sets) and set C{no_new_privs}: an C{exec} cannot gain any back.

    @raise OSError: the kernel refused.
    """
    wanted = set(keep)
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _raise("no_new_privs")
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(64):
        if cap in wanted:
            continue
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:
                break  # past the last capability this kernel knows
            _raise("drop capability")
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for cap in wanted:
        word, bit = divmod(cap, 32)
        data[word].effective |= 1 << bit
        data[word].permitted |= 1 << bit
    if _libc.capset(ctypes.byref(header), data) != 0:
        _raise("capset")


def _raise(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err), what)


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
