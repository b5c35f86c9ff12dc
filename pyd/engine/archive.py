"""C{docker cp}, C{docker export}, C{docker diff} (layer: engine).

Paths are resolved inside the container's root (L{pyd.drivers.streams.archive}); archives are
written by a helper that chroots into the root; uploads are extracted by the images area's
chroot'ed untar helper into the resolved destination. A stopped container's root is mounted for
the operation and unmounted afterwards.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat as st
import tarfile
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pyd.core.errors import InvalidParameter, NotFound, SystemError_
from pyd.core.records import Change
from pyd.core.seams import Blocking, EventSink
from pyd.drivers.process import ProcessRunner
from pyd.drivers.streams import archive
from pyd.drivers.streams.archive import PathEscape, PathStat
from pyd.engine.container_config import resolve_user
from pyd.engine.streams import StreamTarget, StreamTargets

log = Logger()


class Extractor(Protocol):
    """The images area's safe extraction helper (C{pyd.drivers.storage.layers.Extractor})."""

    def extract(self, src_path: str, dest: str, tar_out: str) -> Deferred[dict[str, Any]]:
        """Extract the tar at C{src_path} into C{dest} (chroot'ed); copy the plain tar to C{tar_out}."""
        ...


class RootfsProvider(Protocol):
    """The part of L{pyd.engine.contracts.ImageProvider} this service uses."""

    async def mount_rw_layer(self, container_id: str) -> str:
        """Mount the container's root filesystem; return the merged directory."""
        ...

    async def unmount_rw_layer(self, container_id: str) -> None:
        """Unmount it (idempotent)."""
        ...

    async def changes(self, container_id: str) -> list[Change]:
        """What the writable layer changed."""
        ...


def _not_found(path: str, ref: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {ref}")


class ArchiveService:
    """Container file access for the archive, export and changes endpoints."""

    def __init__(
        self,
        targets: StreamTargets,
        rootfs: RootfsProvider,
        extractor: Extractor | None,
        runner: ProcessRunner,
        blocking: Blocking,
        tmp_dir: str,
        events: EventSink | None = None,
    ) -> None:
        self._events = events
        self._targets = targets
        self._rootfs = rootfs
        self._extractor = extractor
        self._runner = runner
        self._blocking = blocking
        self._tmp = tmp_dir

    @asynccontextmanager
    async def _root(self, target: StreamTarget) -> AsyncIterator[str]:
        if target.rootfs and target.running:
            yield target.rootfs
            return
        root = await self._rootfs.mount_rw_layer(target.id)
        try:
            yield root
        finally:
            current = await self._targets.stream_target(target.id)
            if not current.running:
                await self._rootfs.unmount_rw_layer(target.id)

    def _emit(self, target: StreamTarget, action: str) -> None:
        """dockerd's container events for archive operations (archive-path, export,
        extract-to-dir)."""
        if self._events is None:
            return
        attrs = {str(k): str(v) for k, v in target.labels.items()}
        attrs.update(image=target.image, name=target.name)
        d = self._events.emit("container", action, target.id, attrs)
        d.addErrback(lambda f: log.failure("event {action}", f, action=action))

    async def stat(self, ref: str, path: str) -> PathStat:
        """C{HEAD archive}. @raise NotFound: no container, or no such path (dockerd's text)."""
        target = await self._targets.stream_target(ref)
        async with self._root(target) as root:
            result = await self._blocking.run(_stat, root, path)
        if result is None:
            raise _not_found(path, ref)
        return result

    async def get(self, ref: str, path: str) -> tuple[PathStat, IO[bytes]]:
        """C{GET archive}: the path's stat and an open, already unlinked tar file of it."""
        target = await self._targets.stream_target(ref)
        async with self._root(target) as root:
            result = await self._blocking.run(_stat, root, path)
            if result is None:
                raise _not_found(path, ref)
            plan = await self._blocking.run(archive.tar_plan, root, path)
            f = await self._tar(root, *plan)
        self._emit(target, "archive-path")
        return result, f

    async def export(self, ref: str) -> IO[bytes]:
        """C{GET export}: the whole root filesystem as an open, already unlinked tar file."""
        target = await self._targets.stream_target(ref)
        async with self._root(target) as root:
            f = await self._tar(root, "/", ".", "/")
        self._emit(target, "export")
        return f

    async def _tar(self, root: str, source_dir: str, base: str, rebase: str) -> IO[bytes]:
        os.makedirs(self._tmp, exist_ok=True)
        f = tempfile.TemporaryFile(dir=self._tmp)  # noqa: SIM115 - returned to the caller
        try:
            result = await self._runner.run(
                archive.tar_helper_argv(root, source_dir, base, rebase),
                child_fds={1: f.fileno()},
                env={"PYTHONPATH": archive.pythonpath()},
            )
            if result.rc != 0:
                err = result.stderr.decode("utf-8", "replace").strip().splitlines()
                raise SystemError_(err[-1] if err else f"archive helper exited {result.rc}")
            f.seek(0)
            return f
        except BaseException:
            f.close()
            raise

    async def put(
        self,
        ref: str,
        path: str,
        content: IO[bytes],
        no_overwrite_dir_non_dir: bool = False,
        copy_uid_gid: bool = False,
    ) -> None:
        """C{PUT archive}: extract the tar C{content} into the directory C{path}.

        Like dockerd: with C{no_overwrite_dir_non_dir} an entry may not replace a directory
        with a non-directory or the reverse (checked before anything is written); with
        C{copy_uid_gid} and a C{User} configured, what is extracted belongs to that user (its
        uid and primary gid in the container's /etc/passwd, or the C{:group} given); otherwise
        the archive's numeric owners are kept.

        @raise NotFound: no container or no such directory.
        @raise InvalidParameter: C{path} is not a directory, the user is unknown, or the tar is
            not acceptable.
        @raise SystemError_: an entry would replace a directory with a non-directory or the
            reverse (dockerd's text, a 500 there too).
        """
        target = await self._targets.stream_target(ref)
        if self._extractor is None:
            raise SystemError_("no extraction helper configured")
        os.makedirs(self._tmp, exist_ok=True)
        src = await self._blocking.run(_spool, content, self._tmp)
        scratch = src + ".plain"
        owned = src + ".owned"
        try:
            async with self._root(target) as root:
                host, exists, is_dir = await self._blocking.run(archive.extraction_dir, root, path)
                if not exists:
                    raise _not_found(path, ref)
                if not is_dir:
                    raise InvalidParameter("extraction point is not a directory")
                if no_overwrite_dir_non_dir:
                    dest = "/" + os.path.relpath(host, root) if host != root else "/"
                    await self._blocking.run(
                        _check_dir_non_dir, src, host, posixpath.normpath(dest)
                    )
                if copy_uid_gid and target.user:
                    uid, gid, _, _ = await self._blocking.run(resolve_user, root, target.user)
                    # the chroot'ed helper applies the owners of the entries: set them there
                    await self._blocking.run(_reown, src, owned, uid, gid)
                    src, owned = owned, src
                try:
                    await self._extractor.extract(src, host, scratch)
                except Exception as e:
                    raise InvalidParameter(f"Error processing tar file({e})") from e
        finally:
            await self._blocking.run(_unlink, src, scratch, owned)
        self._emit(target, "extract-to-dir")

    async def changes(self, ref: str) -> list[Change]:
        """C{docker diff}."""
        target = await self._targets.stream_target(ref)
        return await self._rootfs.changes(target.id)


def _stat(root: str, path: str) -> PathStat | None:
    try:
        return archive.stat_path(root, path)
    except PathEscape as e:
        raise InvalidParameter(str(e)) from e


def _spool(content: IO[bytes], tmp: str) -> str:
    fd, name = tempfile.mkstemp(dir=tmp, prefix="cp-")
    with os.fdopen(fd, "wb") as out:
        content.seek(0)
        shutil.copyfileobj(content, out, 1 << 20)
    return name


def _unlink(*paths: str) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _member_path(name: str) -> str:
    rel = posixpath.normpath("/" + name).lstrip("/")
    return rel or "."


def _check_dir_non_dir(src: str, host: str, dest: str) -> None:
    """go-archive's C{NoOverwriteDirNonDir}, for every entry, before anything is written.

    Entries are looked up as the chroot'ed helper will write them: symlinks inside C{host}
    resolve inside it.
    """
    try:
        tf = tarfile.open(src, mode="r|*")  # noqa: SIM115 - closed below
    except tarfile.TarError:
        return  # the extraction reports it
    with tf:
        try:
            for member in tf:
                rel = _member_path(member.name)
                if rel == ".":
                    continue
                parent, base = posixpath.split(rel)
                try:
                    where = archive.scoped(host, parent) if parent else "/"
                    info = os.lstat(host + where.rstrip("/") + "/" + base)
                except (OSError, archive.PathEscape):
                    continue
                path = posixpath.join(dest, rel)
                if st.S_ISDIR(info.st_mode) and not member.isdir():
                    raise SystemError_(
                        f"cannot overwrite directory {_go_quote(path)} with non-directory "
                        f"{_go_quote(dest)}"
                    )
                if not st.S_ISDIR(info.st_mode) and member.isdir():
                    raise SystemError_(
                        f"cannot overwrite non-directory {_go_quote(path)} with directory "
                        f"{_go_quote(dest)}"
                    )
        except tarfile.TarError:
            return


def _reown(src: str, out: str, uid: int, gid: int) -> None:
    """Copy the tar C{src} to C{out} with every entry owned by C{uid}:C{gid}."""
    try:
        with (
            tarfile.open(src, mode="r|*") as tin,
            tarfile.open(out, mode="w|", format=tarfile.PAX_FORMAT) as tout,
        ):
            for member in tin:
                member.uid, member.gid = uid, gid
                member.uname = member.gname = ""
                tout.addfile(member, tin.extractfile(member) if member.isreg() else None)
    except tarfile.TarError as e:
        raise InvalidParameter(f"Error processing tar file({e})") from e
