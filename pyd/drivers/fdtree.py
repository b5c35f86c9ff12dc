"""Trees walked through descriptors and written as tar, numeric owners only (layer: drivers).

A container can rename its own files while the daemon reads them, and swap a directory with a
symlink to C{/} in one step (C{renameat2(RENAME_EXCHANGE)}). A reader that checks a path with
C{lstat} and then opens the same I{path} follows the symlink it never saw, onto a host file
(C{docker commit --pause=false}, C{docker diff}, export of a running container). Here every
directory is entered through a descriptor of its parent with C{O_NOFOLLOW}, every file is opened
the same way (non-blocking: a FIFO cannot hang the reader) and checked with C{fstat} before a
byte is read (a device swapped in is never read), and the tar header is built from that C{fstat}.
A name swapped under the walk is skipped or archived as what it now is, never followed.

Tar entries carry numeric owners and empty user and group names, as moby's
C{FileInfoHeaderNoLookups}: C{tarfile.TarFile.add}/C{gettarinfo} call C{pwd.getpwuid} and
C{grp.getgrgid}, and inside a container's root that makes glibc load the container's NSS
modules (see L{pyd.drivers.sealed}). Nothing here looks a name up.

Standard library only (the chroot'ed helpers import it); everything here blocks.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from typing import IO, NamedTuple

CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# extra PAX records for an entry: (parent fd, name, open fd of a regular file or None, lstat)
PaxFn = Callable[[int, str, "int | None", os.stat_result], dict[str, str]]
# the errors that mean "this name changed under us": skip it
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


class Entry(NamedTuple):
    """One element of a walk: C{name} in the directory C{parent} (a descriptor, valid until the
    walk moves on), C{rel} its path below the top, C{st} its C{lstat}."""

    rel: str
    parent: int
    name: str
    st: os.stat_result


def open_dir_at(dirfd: int, name: str) -> int:
    """A readable descriptor of the directory C{name} in C{dirfd}; a symlink is refused
    (C{ELOOP}), never followed."""
    return os.open(name, _DIR_FLAGS, dir_fd=dirfd)


def open_file_at(dirfd: int, name: str) -> tuple[int, os.stat_result] | None:
    """C{name} in C{dirfd} opened for reading if it is I{now} a regular file: its descriptor
    and C{fstat}; None when it is gone or is something else (a symlink, FIFO or device swapped
    in is never followed, waited on or read)."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dirfd)
    except OSError as e:
        if e.errno in _GONE or e.errno in (errno.ENXIO, errno.EACCES, errno.EPERM):
            return None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return fd, st


def walk(top: int) -> Iterator[Entry]:
    """Everything below the directory descriptor C{top}, parents before their content, names
    sorted. Directories are entered with L{open_dir_at} (a name swapped for a symlink is
    skipped, not followed); what vanishes during the walk is skipped. Iterative: a deep tree
    costs one descriptor per level, not a Python stack frame."""
    first = os.dup(top)
    stack: list[tuple[int, str, Iterator[str]]] = []
    try:
        stack.append((first, "", iter(sorted(os.listdir(first)))))
    except BaseException:
        os.close(first)
        raise
    try:
        while stack:
            dirfd, rel, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(dirfd)
                stack.pop()
                continue
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except OSError as e:
                if e.errno in _GONE:
                    continue
                raise
            path = f"{rel}/{name}" if rel else name
            yield Entry(path, dirfd, name, st)
            if not stat.S_ISDIR(st.st_mode):
                continue
            try:
                sub = open_dir_at(dirfd, name)
            except OSError as e:
                if e.errno in _GONE:
                    continue
                raise
            try:
                stack.append((sub, path, iter(sorted(os.listdir(sub)))))
            except BaseException:
                os.close(sub)
                raise
    finally:
        for dirfd, _, _ in stack:
            os.close(dirfd)


def tarinfo(name: str, st: os.stat_result, linkname: str = "") -> tarfile.TarInfo | None:
    """A tar header for an entry with the metadata C{st}: numeric owners, empty user and group
    names, whole-second mtime. None for a socket (not archived, as dockerd)."""
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = int(st.st_mtime)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISREG(mode):
        ti.type = tarfile.REGTYPE
        ti.size = st.st_size
    elif stat.S_ISLNK(mode):
        ti.type = tarfile.SYMTYPE
        ti.linkname = linkname
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        ti.type = tarfile.FIFOTYPE
    else:
        return None
    return ti


class _Exact:
    """Exactly C{size} bytes of a descriptor: a file that shrank while it is archived is padded
    with zeros, one that grew is cut (the header, written first, promised C{size})."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._left = size

    def read(self, n: int = -1) -> bytes:
        """Up to C{n} bytes, all of them unless the promised size is reached (tarfile takes a
        short read for the end of the data)."""
        want = self._left if n < 0 else min(n, self._left)
        parts = []
        got = 0
        while got < want:
            data = os.read(self._fd, min(want - got, CHUNK))
            if not data:
                parts.append(bytes(want - got))
                break
            parts.append(data)
            got += len(data)
        self._left -= want
        return b"".join(parts)


class TarWriter:
    """Adds walked entries to an open C{tarfile} (stream or file), through descriptors.

    Hard links (the same inode seen twice) become link entries naming the first one, as
    C{tarfile.add} and dockerd do.

    @param pax: extra PAX records for an entry, called with (parent fd, name, fd or None, lstat)
        (commit uses it for extended attributes).
    """

    def __init__(self, tf: tarfile.TarFile, pax: PaxFn | None = None) -> None:
        self.tf = tf
        self._pax = pax
        self._inodes: dict[tuple[int, int], str] = {}

    def add(self, parent: int, name: str, st: os.stat_result, arcname: str) -> bool:
        """Archive C{name} of directory C{parent} (whose C{lstat} was C{st}) as C{arcname}.

        @return: False when it vanished or changed kind under us and was left out.
        """
        if stat.S_ISREG(st.st_mode):
            opened = open_file_at(parent, name)
            if opened is None:
                return False
            fd, st = opened
            try:
                return self._add_regular(parent, name, fd, st, arcname)
            finally:
                os.close(fd)
        linkname = ""
        if stat.S_ISLNK(st.st_mode):
            try:
                linkname = os.readlink(name, dir_fd=parent)
            except OSError as e:
                if e.errno in _GONE or e.errno == errno.EINVAL:
                    return False
                raise
        ti = tarinfo(arcname, st, linkname)
        if ti is None:
            return False
        if self._hardlink(ti, st, arcname):
            return True
        if self._pax is not None:
            ti.pax_headers = self._pax(parent, name, None, st)
        self.tf.addfile(ti)
        return True

    def add_dir(self, fd: int, arcname: str) -> None:
        """Archive the directory open at C{fd} itself (the top of a copy) as C{arcname}."""
        ti = tarinfo(arcname, os.fstat(fd))
        assert ti is not None
        self.tf.addfile(ti)

    def _add_regular(
        self, parent: int, name: str, fd: int, st: os.stat_result, arcname: str
    ) -> bool:
        ti = tarinfo(arcname, st)
        assert ti is not None
        if self._hardlink(ti, st, arcname):
            return True
        if self._pax is not None:
            ti.pax_headers = self._pax(parent, name, fd, st)
        self.tf.addfile(ti, _Exact(fd, st.st_size))  # type: ignore[arg-type]  # read() is all tarfile uses
        return True

    def _hardlink(self, ti: tarfile.TarInfo, st: os.stat_result, arcname: str) -> bool:
        if stat.S_ISDIR(st.st_mode) or st.st_nlink < 2:
            return False
        key = (st.st_dev, st.st_ino)
        first = self._inodes.get(key)
        if first is None:
            self._inodes[key] = arcname
            return False
        ti.type = tarfile.LNKTYPE
        ti.linkname = first
        ti.size = 0
        self.tf.addfile(ti)
        return True


def write_tree(out: IO[bytes], top: int, prefix: str = "", *, top_name: str | None = None) -> None:
    """Stream a tar of everything below the directory descriptor C{top} into C{out}.

    Entry names are C{prefix} + the path below C{top}; C{top_name}, when given, adds an entry
    for C{top} itself first.
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]  # typeshed's tarfile.open overloads omit format= for stream modes
        writer = TarWriter(tf)
        if top_name is not None:
            writer.add_dir(top, top_name)
        for e in walk(top):
            writer.add(e.parent, e.name, e.st, prefix + e.rel)
