"""COPY, ADD and WORKDIR writing into a step's root filesystem; all blocking (layer: engine).

The destination root (the step's writable layer) and every source tree are reached only through
L{pyd.drivers.inroot.InRoot}: the destination directory is resolved and created inside the root by
the kernel (a link the image holds, C{/evil -> /root}, means the image's C{/root}), and below it
every entry is made with a C{*at} call on its resolved parent's descriptor without following its
last element; the source is walked by descriptors without following links below its top. Only
regular files are opened for reading.

Device nodes and FIFOs in a source (C{COPY --from=img /dev/x}) are copied as nodes, as dockerd's
tar-based copy does: C{mknod}/C{mkfifo} in the layer with the source's numbers; the node is never
opened, so no byte of a host device is read. Sockets are skipped. ADD's local archives are
unpacked with L{intar} inside the root, keeping their owners (unless C{--chown}) and making their
device entries the same way.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable

import attrs

from pyd.drivers.inroot import InRoot, fd_path
from pyd.engine.builder import intar
from pyd.engine.builder.fs import (
    BuildFileError,
    Source,
    clean_rel,
    lstat_entry,
    open_dir,
    open_regular,
    zlib_error,
)
from pyd.engine.builder.ignore import PatternMatcher


@attrs.frozen
class CopyOptions:
    """How to copy: owner (None = keep the source's), mode override, unpack local archives."""

    owner: tuple[int, int] | None = (0, 0)
    mode: int | None = None
    unpack: bool = False
    chowned: bool = False  # --chown given: also applies to unpacked archive members
    exclude: PatternMatcher | None = None  # COPY/ADD --exclude, matched below each source
    max_unpack: int = 0  # max-layer-size: bytes the step's unpacked archives may write (0: none)
    space_check: Callable[[], None] | None = None  # min-free-space, while unpacking
    # The count of what this step's archives wrote so far (made by copy_into): the archives of
    # one ADD land in one layer, so max-layer-size holds for their sum, not for each.
    unpacked: intar.Budget | None = None


def _mkdir_all(root: InRoot, path: str, owner: tuple[int, int] | None) -> str:
    """C{mkdir -p path} inside C{root} (missing parents 0755, owned like the copy); returns the
    directory's resolved container path.

    @raise BuildFileError: an element is not a directory (dockerd's text).
    """
    uid, gid = owner if owner is not None else (None, None)
    try:
        fd = root.makedirs(path, 0o755, uid, gid)
    except (NotADirectoryError, FileExistsError):
        raise BuildFileError(f"cannot copy to non-directory: {_first_nondir(root, path)}") from None
    except OSError as e:  # a link loop, ENOSPC...
        raise BuildFileError(f"cannot create directory {path}: {intar.reason(e)}") from None
    try:
        return root.container_path(fd)
    finally:
        os.close(fd)


def _first_nondir(root: InRoot, path: str) -> str:
    """The resolved container path of the first element of C{path} that is not a directory."""
    cur = "/"
    for part in (p for p in path.split("/") if p):
        cur = posixpath.join(cur, part)
        try:
            if not stat.S_ISDIR(root.stat(cur).st_mode):
                return root.realpath(cur)
        except OSError:
            return cur
    return cur


def copy_into(
    root: str,
    sources: list[Source],
    dest: str,
    workdir: str,
    opts: CopyOptions,
    cmd: str = "COPY",
    multi: bool = False,
) -> None:
    """Copy C{sources} to C{dest} inside the root filesystem C{root} with dockerd's rules:
    a directory's contents are copied; a file lands inside C{dest} when it ends with C{/} or is
    an existing directory; several sources need a directory destination.

    @raise BuildFileError: on a rule violation, or a file that cannot be written (the message
        names container paths only).
    """
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
        if dest.endswith("/.") or dest == ".":
            dest = dest[:-1]
    dest_is_dir = dest.endswith("/") or dest.endswith("/.")
    dest_path = "/" + clean_rel(dest)
    if (multi or len(sources) > 1) and not dest_is_dir:
        raise BuildFileError(
            f"When using {cmd} with more than one source file, the destination must be a "
            "directory and end with a /"
        )
    if opts.unpack and opts.unpacked is None:
        limits = intar.Policy(max_bytes=opts.max_unpack, space_check=opts.space_check)
        opts = attrs.evolve(opts, unpacked=intar.Budget(limits))
    with InRoot(root) as dst:
        try:
            dest_is_dir = dest_is_dir or stat.S_ISDIR(dst.stat(dest_path).st_mode)
        except OSError:  # the destination does not exist yet: it is not a directory
            pass
        for src in sources:
            try:
                with InRoot(src.root) as tree:
                    if src.keep:  # COPY --parents: the source's own path below dest
                        _copy_source(
                            tree, src, dst, posixpath.join(dest_path, src.keep), False, opts
                        )
                    else:
                        _copy_source(tree, src, dst, dest_path, dest_is_dir, opts)
            except OSError as e:
                raise BuildFileError(f"{cmd} failed: {src.name or dest}: {intar.reason(e)}") from e
            except RecursionError as e:
                raise BuildFileError(f"{cmd} failed: {src.name}: too deeply nested") from e
            except (intar.MemberError, tarfile.TarError, EOFError, zlib_error()) as e:
                msg = str(e) if isinstance(e, intar.MemberError) else "the archive is corrupt"
                raise BuildFileError(f"{cmd} failed: {src.name}: {msg}") from e


def _copy_source(
    tree: InRoot, src: Source, dst: InRoot, dest_path: str, dest_is_dir: bool, opts: CopyOptions
) -> None:
    top = tree.open(src.path, os.O_PATH)  # the named source itself is followed (in its tree)
    try:
        info = os.fstat(top)
        if stat.S_ISDIR(info.st_mode):
            target = _mkdir_all(dst, dest_path, opts.owner)
            tfd = dst.open_dir(target)
            sfd = open_dir(top, "")
            try:
                for name in sorted(os.listdir(sfd)):
                    _copy_entry(sfd, name, dst, tfd, posixpath.join(target, name), opts, name)
            finally:
                os.close(sfd)
                os.close(tfd)
            return
        if opts.unpack and is_archive(top):
            target = _mkdir_all(dst, dest_path, opts.owner)
            _unpack(top, dst, target, opts)
            return
        if dest_is_dir:
            parent = _mkdir_all(dst, dest_path, opts.owner)
            target = posixpath.join(parent, src.name)
        else:
            parent = _mkdir_all(dst, posixpath.dirname(dest_path), opts.owner)
            target = posixpath.join(parent, posixpath.basename(dest_path))
        with dst.at(target) as (pfd, base):
            _write_nondir(top, "", info, pfd, base, target, opts)
    finally:
        os.close(top)


def _copy_entry(
    sdir: int, name: str, dst: InRoot, ddir: int, dpath: str, opts: CopyOptions, rel: str = ""
) -> None:
    """Copy entry C{name} of the source directory C{sdir} to C{name} in the destination
    directory C{ddir} (whose container path is C{posixpath.dirname(dpath)}); C{rel} is its
    path below the source, what C{--exclude} patterns match."""
    if opts.exclude is not None and rel and opts.exclude.matches(rel):
        return
    info = lstat_entry(sdir, name)
    if not stat.S_ISDIR(info.st_mode):
        _write_nondir(sdir, name, info, ddir, name, dpath, opts)
        return
    out = intar.ensure_dir(dst, ddir, name, dpath)
    try:
        sub = open_dir(sdir, name)
        try:
            here = dst.container_path(out)
            for child in sorted(os.listdir(sub)):
                _copy_entry(
                    sub, child, dst, out, posixpath.join(here, child), opts,
                    posixpath.join(rel, child) if rel else "",
                )  # fmt: skip
        finally:
            os.close(sub)
        _finish(out, info, opts)
    finally:
        os.close(out)


def _finish(fd: int, info: os.stat_result, opts: CopyOptions) -> None:
    owner = opts.owner if opts.owner is not None else (info.st_uid, info.st_gid)
    mode = opts.mode if opts.mode is not None else stat.S_IMODE(info.st_mode)
    intar.finish(fd, owner, mode, None)
    os.utime(fd_path(fd), ns=(info.st_atime_ns, info.st_mtime_ns))


def _write_nondir(
    sdir: int,
    name: str,
    info: os.stat_result,
    pfd: int,
    base: str,
    label: str,
    opts: CopyOptions,
) -> None:
    """Make the file, link or node C{base} in C{pfd} from source entry C{name} of C{sdir}
    (C{""}: C{sdir} itself); what was there is replaced, never written through."""
    if not base:
        raise BuildFileError(f"cannot replace to directory {label} with file")
    there = intar.lstat_at(pfd, base)
    if there is not None and stat.S_ISDIR(there.st_mode):
        raise BuildFileError(f"cannot replace to directory {label} with file")
    if stat.S_ISSOCK(info.st_mode) or not (
        stat.S_ISREG(info.st_mode)
        or stat.S_ISLNK(info.st_mode)
        or stat.S_ISFIFO(info.st_mode)
        or stat.S_ISCHR(info.st_mode)
        or stat.S_ISBLK(info.st_mode)
    ):
        return
    if there is not None:
        os.unlink(base, dir_fd=pfd)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(name, dir_fd=sdir), base, dir_fd=pfd)
        owner = opts.owner if opts.owner is not None else (info.st_uid, info.st_gid)
        os.chown(base, *owner, dir_fd=pfd, follow_symlinks=False)
        return
    if stat.S_ISREG(info.st_mode):
        src = open_regular(sdir, name)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            out = os.open(base, flags, 0o600, dir_fd=pfd)
            try:
                _copy_bytes(src, out)
                _finish(out, info, opts)
            finally:
                os.close(out)
        finally:
            os.close(src)
        return
    # A FIFO or device node: made as a node; the source is never opened.
    if stat.S_ISFIFO(info.st_mode):
        os.mkfifo(base, 0o600, dir_fd=pfd)
    else:
        os.mknod(base, stat.S_IFMT(info.st_mode) | 0o600, info.st_rdev, dir_fd=pfd)
    node = intar.open_entry(pfd, base)
    try:
        _finish(node, info, opts)
    finally:
        os.close(node)


def _copy_bytes(src: int, dst: int) -> None:
    """Copy a file's bytes in the kernel where it can (copy_file_range), else by reads."""
    try:
        while os.copy_file_range(src, dst, 1 << 24):
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
    while chunk := os.read(src, 1 << 20):
        os.write(dst, chunk)


def is_archive(fd: int) -> bool:
    """Whether the file at C{fd} (an C{O_PATH} descriptor) is a tar archive (plain, gzip,
    bzip2 or xz), judged by content; only a regular file is read."""
    try:
        rfd = open_regular(fd, "")
    except OSError:
        return False
    with os.fdopen(rfd, "rb") as f:
        head = f.read(262)
        if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
            f.seek(0)
            try:
                with tarfile.open(fileobj=f, mode="r:*") as tf:
                    tf.next()
                return True
            except (tarfile.TarError, OSError, EOFError, zlib_error()):
                return False
        return len(head) >= 262 and head[257:262] == b"ustar"


def _unpack(fd: int, dst: InRoot, dest_path: str, opts: CopyOptions) -> None:
    """Extract the local archive at C{fd} into C{dest_path}, keeping its owners unless --chown."""
    forced = opts.owner if opts.chowned and opts.owner is not None else None

    def owner(m: tarfile.TarInfo) -> tuple[int, int]:
        return forced if forced is not None else (m.uid, m.gid)

    policy = intar.Policy(
        owner=owner,
        specials=True,
        link_meta=True,
        max_bytes=opts.max_unpack,
        space_check=opts.space_check,
    )
    with os.fdopen(open_regular(fd, ""), "rb") as f, tarfile.open(fileobj=f, mode="r:*") as tf:
        intar.extract(tf, tf, dst, dest_path, policy, opts.unpacked)


def make_workdir(root: str, path: str, owner: tuple[int, int] | None) -> None:
    """WORKDIR: create the directory (0755) if missing, inside C{root}."""
    with InRoot(root) as tree:
        _mkdir_all(tree, "/" + clean_rel(path), owner)
