"""Paths inside a container's root: resolution in scope, stat, tar plans (layer: drivers).

Paths and symlinks are resolved I{inside} the root, never outside it, as moby's
C{symlink.FollowSymlinkInScope}: an absolute link target restarts at the container's root and
C{..} stops at it, so a link pointing at C{/etc/shadow} means the container's file.

Standard library only: the C{docker cp} helper (L{pyd.drivers.streams.rootview}) imports this
module and starts without site-packages. Everything here blocks.
"""

from __future__ import annotations

import os
import posixpath
import stat as st
import tarfile
import time
from typing import IO, Any

from pyd.core.ids import go_quote

# Go's os.FileMode type bits (what the CLI decodes from X-Docker-Container-Path-Stat).
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20

_MAX_LINKS = 255


class PathEscape(Exception):
    """Too many levels of symbolic links."""


def go_mode(mode: int) -> int:
    """A POSIX C{st_mode} as Go's C{os.FileMode}."""
    out = mode & 0o777
    if st.S_ISDIR(mode):
        out |= GO_MODE_DIR
    elif st.S_ISLNK(mode):
        out |= GO_MODE_SYMLINK
    elif st.S_ISBLK(mode):
        out |= GO_MODE_DEVICE
    elif st.S_ISCHR(mode):
        out |= GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE
    elif st.S_ISFIFO(mode):
        out |= GO_MODE_NAMED_PIPE
    elif st.S_ISSOCK(mode):
        out |= GO_MODE_SOCKET
    if mode & st.S_ISUID:
        out |= GO_MODE_SETUID
    if mode & st.S_ISGID:
        out |= GO_MODE_SETGID
    if mode & st.S_ISVTX:
        out |= GO_MODE_STICKY
    return out


def rfc3339_nano(ns: int) -> str:
    """Go's C{time.Time} JSON form in UTC (trailing zeros of the fraction dropped).

    Formatted by hand from C{gmtime}: C{strftime} may consult the time zone, which inside a
    container's root means parsing the container's C{/etc/localtime}.
    """
    secs, frac = divmod(ns, 1_000_000_000)
    t = time.gmtime(secs)
    base = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def scoped(root: str, path: str) -> str:
    """The container path C{path} with every symlink followed inside C{root}; returns the
    container path (absolute, cleaned). The last element is followed too.

    @raise PathEscape: a symlink loop.
    """
    resolved = "/"
    pending = [p for p in path.split("/") if p]
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            resolved = posixpath.dirname(resolved) or "/"
            continue
        candidate = posixpath.join(resolved, part)
        host = root + candidate
        try:
            is_link = st.S_ISLNK(os.lstat(host).st_mode)
        except OSError:
            is_link = False
        if not is_link:
            resolved = candidate
            continue
        hops += 1
        if hops > _MAX_LINKS:
            raise PathEscape(f"too many links in {path}")
        target = os.readlink(host)
        if target.startswith("/"):
            resolved = "/"
        pending = [p for p in target.split("/") if p] + pending
    return resolved


def resolve(root: str, path: str) -> tuple[str, str]:
    """moby's C{ResolvePath}: the directory part resolved in scope, the last element not.

    @return: (host path, absolute container path as given, cleaned, keeping a trailing C{/} or
        C{/.}).
    """
    abs_path = _preserve_trailing(posixpath.normpath(posixpath.join("/", path)), path)
    dir_part, base = abs_path.rsplit("/", 1)
    resolved_dir = scoped(root, dir_part or "/")
    host = os.path.join(root, resolved_dir.lstrip("/"), base) if base else root + resolved_dir
    return host, abs_path


def _preserve_trailing(cleaned: str, original: str) -> str:
    if original.endswith("/.") and not cleaned.endswith("/."):
        return cleaned.rstrip("/") + "/."
    if original.endswith("/") and not cleaned.endswith("/"):
        return cleaned + "/"
    return cleaned


def tar_plan(root: str, path: str) -> tuple[str, str, str]:
    """Where the helper starts and what it names the entries (moby's rebase options).

    @return: (source dir inside the root, source base, rebase name).
    """
    host, abs_path = resolve(root, path)
    info = os.lstat(host)
    rel = "/" + os.path.relpath(host, root) if host != root else "/"
    rel = posixpath.normpath(rel)
    rebase = posixpath.basename(abs_path.rstrip("/")) if abs_path.rstrip("/") not in ("",) else "/"
    if abs_path.endswith("/."):
        rebase = "."
    if st.S_ISDIR(info.st_mode):
        return rel, ".", rebase
    return posixpath.dirname(rel) or "/", posixpath.basename(rel), rebase


def extraction_dir(root: str, path: str) -> tuple[str, bool, bool]:
    """C{PUT archive}'s destination: every element (the last too) followed in scope.

    @return: (host path, exists, is a directory).
    """
    abs_path = posixpath.normpath(posixpath.join("/", path))
    host = root + scoped(root, abs_path) if abs_path != "/" else root
    try:
        return host, True, st.S_ISDIR(os.lstat(host).st_mode)
    except OSError:
        return host, False, False


def _member_path(name: str) -> str:
    rel = posixpath.normpath("/" + name).lstrip("/")
    return rel or "."


def dir_non_dir_conflict(
    src: str | IO[bytes], host: str, dest: str, seekable: bool = False
) -> str | None:
    """go-archive's C{NoOverwriteDirNonDir}, for every entry, before anything is written.

    Entries are looked up as the chroot'ed extraction will write them: symlinks inside
    C{host} resolve inside it.

    @param src: the tar (a path or a file object at its start).
    @param seekable: C{src} is an uncompressed tar in a regular file (read as one).
    @param host: the extraction directory as this process sees it.
    @param dest: the same directory as the container names it (for the message).
    @return: dockerd's message for the first conflict, or None.
    """
    try:
        if isinstance(src, str):
            tf = tarfile.open(src, mode="r|*")  # noqa: SIM115 - closed below
        elif seekable:
            # headers only: the members' contents are skipped, not read
            tf = tarfile.open(fileobj=src, mode="r:")  # noqa: SIM115 - closed below
        else:
            tf = tarfile.open(fileobj=src, mode="r|*")  # noqa: SIM115 - closed below
    except tarfile.TarError:
        return None  # the extraction reports it
    with tf:
        try:
            while True:
                member = tf.next()
                if member is None:
                    break
                # nothing looks a member up by name: keep none (a million entries stay small)
                tf.members.clear()  # type: ignore[attr-defined]  # tarfile's list, untyped in typeshed
                rel = _member_path(member.name)
                if rel == ".":
                    continue
                parent, base = posixpath.split(rel)
                try:
                    where = scoped(host, parent) if parent else "/"
                    info = os.lstat(host + where.rstrip("/") + "/" + base)
                except (OSError, PathEscape):
                    continue
                path = posixpath.join(dest, rel)
                if st.S_ISDIR(info.st_mode) and not member.isdir():
                    return (
                        f"cannot overwrite directory {go_quote(path)} with non-directory "
                        f"{go_quote(dest)}"
                    )
                if not st.S_ISDIR(info.st_mode) and member.isdir():
                    return (
                        f"cannot overwrite non-directory {go_quote(path)} with directory "
                        f"{go_quote(dest)}"
                    )
        except tarfile.TarError:
            return None
    return None


def stat_fields(root: str, path: str) -> dict[str, Any] | None:
    """C{StatPath}: lstat of the resolved path; a symlink's target fully resolved in scope.

    @return: the fields of L{pyd.drivers.streams.archive.PathStat}, or None when the path
        does not exist.
    """
    host, abs_path = resolve(root, path)
    try:
        info = os.lstat(host)
    except (FileNotFoundError, NotADirectoryError):
        return None
    link = ""
    if st.S_ISLNK(info.st_mode):
        link = scoped(root, abs_path)
    name = posixpath.basename(abs_path.rstrip("/")) if abs_path.rstrip("/") else "/"
    if abs_path.endswith("/."):
        name = "."
    return {
        "name": name,
        "size": info.st_size,
        "mode": go_mode(info.st_mode),
        "mtime": rfc3339_nano(info.st_mtime_ns),
        "link_target": link,
    }
