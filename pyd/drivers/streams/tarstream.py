"""Write a tar of part of a container's root to stdout, from inside a chroot (layer: drivers).

C{tarstream ROOT SOURCE_DIR SOURCE_BASE REBASE} (L{pyd.drivers.streams.archive.tar_helper_argv}): C{chroot(ROOT)},
C{chdir(SOURCE_DIR)}, then archive C{SOURCE_BASE} (C{.} for a directory's content) with entry
names starting with C{REBASE} instead, as moby's C{TarResourceRebaseOpts}. C{REBASE} C{/} (export)
names entries relative to the root.

Symlinks are stored as links, never followed; the tree is walked through descriptors and every
file is checked with C{fstat} before it is read (L{pyd.drivers.fdtree}). Owners are numeric and
user and group names empty, as dockerd's chrootarchive: a name lookup inside the container's root
would load the container's NSS modules as root. Everything the helper needs is imported before
the C{chroot} and the import system is sealed then; only the capabilities to read any file are
kept (L{pyd.drivers.sealed}).
"""

from __future__ import annotations

import os
import stat
import sys
import tarfile
from typing import IO

from pyd.drivers import fdtree, sealed


def _name(rebase: str, rel: str) -> str:
    if rebase in ("/", ""):
        return rel
    if rel in (".", ""):
        return rebase
    return f"{rebase}/{rel}" if rebase != "." else f"./{rel}"


def write(source_base: str, rebase: str, out: IO[bytes], cwd: int | None = None) -> None:
    """Archive C{source_base} (relative to the directory C{cwd}, default the working directory)
    into C{out}."""
    here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if cwd is None else cwd
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]  # typeshed's tarfile.open overloads omit format= for stream modes
            writer = fdtree.TarWriter(tf)
            if source_base == ".":
                if rebase not in ("/", ""):
                    writer.add_dir(here, _name(rebase, "."))
                top = os.dup(here)
            else:
                try:
                    info = os.stat(source_base, dir_fd=here, follow_symlinks=False)
                except FileNotFoundError:
                    return
                writer.add(here, source_base, info, _name(rebase, "."))
                if not stat.S_ISDIR(info.st_mode):
                    return
                try:
                    top = fdtree.open_dir_at(here, source_base)
                except OSError:
                    return  # swapped for something else since: archived as what it was
            try:
                for e in fdtree.walk(top):
                    try:
                        writer.add(e.parent, e.name, e.st, _name(rebase, e.rel))
                    except PermissionError:
                        continue  # unreadable while archiving
            finally:
                os.close(top)
    finally:
        if cwd is None:
            os.close(here)


def main(argv: list[str]) -> int:
    """Entry point; see the module docstring."""
    if len(argv) != 4:
        sys.stderr.write("usage: tarstream ROOT SOURCE_DIR SOURCE_BASE REBASE\n")
        return 2
    root, source_dir, source_base, rebase = argv
    sealed.close_inherited((0, 1, 2))
    sealed.preload()
    out = os.fdopen(1, "wb", buffering=1 << 20, closefd=False)
    sealed.enter(root)
    sealed.drop_capabilities(sealed.READ_CAPS)
    os.chdir(source_dir)
    write(source_base, rebase, out)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
