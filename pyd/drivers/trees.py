"""Deleting the daemon's own directory trees (layer: drivers).

Writable layers, container bundles and removed volumes are trees pyd made, of a few entries
(a volume's empty C{_data}, a layer's C{diff}, C{work/work} and C{merged}, a bundle's files).
L{remove_tree} deletes them through descriptors: each directory is opened beneath its parent
without following a link, each entry goes with one C{unlinkat} or C{rmdirat}, and a directory
is entered only when it is not empty. shutil.rmtree's walk costs an C{lstat}, C{open},
C{fstat} and listing per directory (issue 21: a bulk `docker rm` deleted two trees per
container, a `docker volume rm` one). What this pass cannot delete (odd modes, a file made
immutable) is left to L{force_remove}.

Standard library only; everything here blocks (call it through the io pool).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str) -> None:
    """Delete C{path} and what is beneath it, never following a link; no error when gone."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except OSError:  # a file or a link where a directory was expected
        force_remove(path)
        return
    try:
        _clear(fd)
    except OSError:
        force_remove(path)
        return
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        force_remove(path)


def _clear(fd: int) -> None:
    """Delete every entry of the directory open at C{fd}."""
    with os.scandir(fd) as it:
        entries = list(it)
    for e in entries:
        if not e.is_dir(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.name, dir_fd=fd)
            continue
        try:
            os.rmdir(e.name, dir_fd=fd)
            continue
        except OSError as err:
            if err.errno != errno.ENOTEMPTY:
                raise
        sub = os.open(e.name, _DIR_FLAGS, dir_fd=fd)
        try:
            _clear(sub)
        finally:
            os.close(sub)
        os.rmdir(e.name, dir_fd=fd)


def force_remove(path: str) -> None:
    """Remove a file or a tree, even with odd modes (no error when gone; what still cannot go
    is left)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:  # already removed: the goal is reached
        pass
    except PermissionError:
        # chattr/odd modes: make writable and retry once
        for dirpath, dirnames, _files in os.walk(path):
            for d in dirnames:
                with contextlib.suppress(OSError):  # best effort before the retry
                    os.chmod(os.path.join(dirpath, d), 0o700)
        shutil.rmtree(path, ignore_errors=True)
