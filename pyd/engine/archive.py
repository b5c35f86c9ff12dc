"""C{docker cp}, C{docker export}, C{docker diff} (layer: engine).

C{docker cp} (HEAD/GET/PUT archive) sees what the container sees: a helper
(L{pyd.drivers.streams.rootview}) builds a private mount-namespace view of the container's files
and works C{chroot}'ed in it. For a running container the view is a copy of the container's own
mount namespace (its live volumes, binds, tmpfs and hosts files; the runtime's /proc, /sys and /dev
left out); for any other container the volumes' and binds' host sources, the hosts files and an
empty tmpfs per tmpfs mount are mounted over the root in the order the runtime mounts them. Paths
resolve inside the view, so a symlink can never lead to a host path. Export is the root filesystem
alone (no volumes), as in dockerd. A stopped container's root is mounted for the operation and
unmounted afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Any, Protocol, runtime_checkable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pyd.core.errors import InvalidParameter, NotFound, SystemError_
from pyd.core.records import Change
from pyd.core.seams import Blocking, EventSink
from pyd.drivers.process import ProcessRunner
from pyd.drivers.streams import archive, rootview
from pyd.drivers.streams.archive import PathStat
from pyd.engine.contracts import RootfsAccess
from pyd.engine.streams import StreamTarget, StreamTargets
from pyd.engine.users import resolve_user

log = Logger()


# errors of a path's own making, as the helper reports them (a 400, not the daemon's fault)
_PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EINVAL})


# The pipe a streamed body reaches the helper through (Linux's default pipe-max-size, the most a
# process without CAP_SYS_RESOURCE may ask for).
PIPE_SIZE = 1 << 20


def _not_found(path: str, ref: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {ref}")


class ArchiveService:
    """Container file access for the archive, export and changes endpoints."""

    def __init__(
        self,
        targets: StreamTargets,
        rootfs: RootfsAccess,
        runner: ProcessRunner,
        blocking: Blocking,
        tmp_dir: str,
        events: EventSink | None = None,
    ) -> None:
        self._events = events
        self._targets = targets
        self._rootfs = rootfs
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

    async def _view(
        self,
        target: StreamTarget,
        root: str,
        op: str,
        args: list[str],
        child_fds: dict[int, int],
    ) -> dict[str, Any]:
        """Run C{op} in the helper's view of the container (see the module docstring).

        @raise SystemError_: the view could not be built or the helper failed.
        """
        spec = await self._blocking.run(_view_spec, target, root)
        for _ in range(2):
            result = await self._runner.run(
                rootview.helper_argv(spec, op, *args),
                child_fds=child_fds,
            )
            if result.rc != 0:
                err = result.stderr.decode("utf-8", "replace").strip().splitlines()
                raise SystemError_(err[-1] if err else f"archive helper exited {result.rc}")
            lines = result.stdout.decode("utf-8", "replace").strip().splitlines()
            out: dict[str, Any] = json.loads(lines[-1]) if lines else {}
            if out.get("error") == "stale" and spec["mode"] == "live":
                # the container stopped (or its pid is not its own any more): the record's
                # mounts over the root are what it will see next
                spec = await self._blocking.run(_view_spec, target, root, False)
                continue
            if out.get("error") == "setup":
                raise SystemError_(str(out.get("message")))
            if out.get("error") == "subpath-escape":
                raise InvalidParameter(str(out.get("message")))
            if out.get("error") == "subpath-notfound":
                raise NotFound(str(out.get("message")))
            if out.get("error") == "path":
                # the kernel refused the path itself (too long, a loop): the client's doing
                if out.get("errno") in _PATH_ERRNOS:
                    raise InvalidParameter(str(out.get("message")))
                raise SystemError_(str(out.get("message")))
            return out
        raise SystemError_(str(out.get("message")))

    async def stat(self, ref: str, path: str) -> PathStat:
        """C{HEAD archive}. @raise NotFound: no container, or no such path (dockerd's text)."""
        target = await self._targets.stream_target(ref)
        async with self._root(target) as root:
            out = await self._view(target, root, "stat", [path], {})
        return _path_stat(out, path, ref)

    async def get(self, ref: str, path: str) -> tuple[PathStat, IO[bytes]]:
        """C{GET archive}: the path's stat and an open, already unlinked tar file of it."""
        target = await self._targets.stream_target(ref)
        os.makedirs(self._tmp, exist_ok=True)
        f = tempfile.TemporaryFile(dir=self._tmp)  # noqa: SIM115 - returned to the caller
        try:
            async with self._root(target) as root:
                out = await self._view(target, root, "get", [path], {3: f.fileno()})
            found = _path_stat(out, path, ref)
            f.seek(0)
        except BaseException:
            f.close()
            raise
        self._emit(target, "archive-path")
        return found, f

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
        content: IO[bytes] | BodyFeed,
        no_overwrite_dir_non_dir: bool = False,
        copy_uid_gid: bool = False,
    ) -> None:
        """C{PUT archive}: extract the tar C{content} into the directory C{path}.

        C{content} is the request's body, whole (a file) or still arriving (L{BodyFeed}: the
        helper reads it from a pipe as it comes, L{_put_streamed}). Like dockerd: with
        C{no_overwrite_dir_non_dir} an entry may not replace a directory with a non-directory
        or the reverse (a whole body is checked before anything is written; one still arriving
        entry by entry, as go-archive does, so the entries before the conflict stay); with
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
        os.makedirs(self._tmp, exist_ok=True)
        if isinstance(content, BodyFeed):
            await self._put_streamed(target, ref, path, content, no_overwrite_dir_non_dir,
                                     copy_uid_gid)  # fmt: skip
            return
        # the body is read by the helper from a file of its own: the request's own spool file
        # when the HTTP server wrote it to one (a large body), a copy otherwise
        body = _file_of(content)
        spooled: IO[bytes] | None = None
        try:
            if body is None:
                spooled = await self._blocking.run(_spool, content, self._tmp)
                body = spooled
            async with self._root(target) as root:
                if copy_uid_gid and target.user:
                    uid, gid, _, _ = await self._blocking.run(resolve_user, root, target.user)
                    # the chroot'ed helper applies the owners of the entries: set them there
                    owned = await self._blocking.run(_reown, body, self._tmp, uid, gid)
                    if spooled is not None:
                        spooled.close()
                    body = spooled = owned
                flags = ["--no-overwrite-dir-non-dir"] if no_overwrite_dir_non_dir else []
                out = await self._view(target, root, "put", [path, *flags], {0: body.fileno()})
        finally:
            if spooled is not None:
                spooled.close()
        self._put_answer(target, ref, path, out)

    async def _put_streamed(
        self,
        target: StreamTarget,
        ref: str,
        path: str,
        body: BodyFeed,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
    ) -> None:
        """C{put} of a body that is still arriving: the helper reads it from a pipe as it comes
        (dockerd's untar reads its request body so). Re-owning the entries needs the whole tar
        first: then it is written to a file, as a finished body is."""
        if copy_uid_gid and target.user:
            # made in the io pool, as _spool makes a finished body's file: a file creation may
            # wait on the disk
            spool = await self._blocking.run(_spool_file, self._tmp)
            try:
                await body.feed(os.dup(spool.fileno()))
                await self.put(ref, path, spool, no_overwrite_dir_non_dir, copy_uid_gid)
            finally:
                spool.close()
            return
        r, w = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # fewer wake-ups of both ends (the default: 64 KiB)
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        fed = body.feed(w)
        # The client going away closes the pipe: the helper reads the body's early end and stops.
        fed.addErrback(lambda _: None)
        try:
            async with self._root(target) as root:
                flags = ["--no-overwrite-dir-non-dir"] if no_overwrite_dir_non_dir else []
                # the read end stays open here until the helper's answer: a helper that finds
                # its view stale is run again on the same pipe, nothing of the body read yet
                out = await self._view(target, root, "put", [path, *flags], {0: r})
        finally:
            body.drop()  # what the helper did not read is discarded
            os.close(r)
        self._put_answer(target, ref, path, out)

    def _put_answer(self, target: StreamTarget, ref: str, path: str, out: dict[str, Any]) -> None:
        """The helper's answer to C{put} as dockerd's errors, or its event."""
        error, message = out.get("error"), str(out.get("message"))
        if error == "notfound":
            raise _not_found(path, ref)
        if error == "dir-non-dir":
            raise SystemError_(message)
        if error == "tar":
            raise InvalidParameter(f"Error processing tar file({message})")
        if error:
            raise InvalidParameter(message)
        self._emit(target, "extract-to-dir")

    async def changes(self, ref: str) -> list[Change]:
        """C{docker diff}."""
        target = await self._targets.stream_target(ref)
        return await self._rootfs.changes(target.id)


@runtime_checkable
class BodyFeed(Protocol):
    """A request body still arriving (L{pyd.api.bodystream.StreamedBody})."""

    def feed(self, fd: int) -> Deferred[None]:
        """Write the body to C{fd} (closed at the end) as it arrives."""

    def drop(self) -> None:
        """Discard what is left of the body; the pipe is closed."""


def _path_stat(out: dict[str, Any], path: str, ref: str) -> PathStat:
    if out.get("error") == "escape":
        raise InvalidParameter(str(out.get("message")))
    found = out.get("stat")
    if not found:
        raise _not_found(path, ref)
    return PathStat(**found)


def _view_spec(target: StreamTarget, root: str, live: bool = True) -> dict[str, Any]:
    """What the helper mounts (blocking: stats the root).

    The order is the runtime's (L{pyd.drivers.runtime.spec.build_spec}): the hosts files unless
    a user mount replaces them, then the user's mounts, shallowest first.
    """
    user_dests = {m.destination.rstrip("/") or "/" for m in target.mounts}
    checks = {
        "mounts": [{"destination": m.destination, "rw": m.rw} for m in target.mounts],
        "readonly_rootfs": target.readonly_rootfs,
    }
    files = [(h, d) for h, d in target.bind_files if d not in user_dests]
    if live and target.running and target.pid > 0:
        info = os.stat(root)
        return {
            "mode": "live",
            "pid": target.pid,
            "expect": [info.st_dev, info.st_ino],
            "keep": sorted(user_dests | {d for _, d in files}),
            "checks": checks,
        }
    mounts: list[dict[str, Any]] = [
        {"type": "bind", "source": h, "destination": d, "optional": True} for h, d in files
    ]
    for m in sorted(target.mounts, key=lambda m: m.destination.rstrip("/").count("/")):
        if m.type == "tmpfs":
            opts = list(m.options) or ["nosuid", "nodev", "noexec"]
            mounts.append({"type": "tmpfs", "destination": m.destination, "options": opts,
                           "rw": m.rw})  # fmt: skip
        else:
            mounts.append(
                {
                    "type": "bind",
                    # a confined bind (an operator's) is opened beneath its allowed root, as at
                    # start (pyd.engine.volumes.confine); a subpath inside its volume
                    "source": m.root or m.source,
                    "destination": m.destination,
                    "rw": m.rw,
                    "recursive": "bind" not in m.options,
                    "subpath": m.subpath,
                }
            )
    return {"mode": "mounts", "root": root, "mounts": mounts, "checks": checks}


def _file_of(content: IO[bytes]) -> IO[bytes] | None:
    """C{content} itself when it is a regular file (the helper reads it from its start,
    whatever the offset), else None."""
    try:
        return content if stat.S_ISREG(os.fstat(content.fileno()).st_mode) else None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _spool_file(tmp: str) -> IO[bytes]:
    """An unnamed file in C{tmp} for a body to be written into (closed by the caller)."""
    return tempfile.TemporaryFile(dir=tmp, prefix="cp-")


def _spool(content: IO[bytes], tmp: str) -> IO[bytes]:
    """C{content} copied to an unlinked file under C{tmp}."""
    out = _spool_file(tmp)
    try:
        content.seek(0)
        shutil.copyfileobj(content, out, 1 << 20)
        out.flush()
    except BaseException:
        out.close()
        raise
    return out


def _reown(src: IO[bytes], tmp: str, uid: int, gid: int) -> IO[bytes]:
    """The tar C{src} copied to an unlinked file under C{tmp} with every entry owned by
    C{uid}:C{gid}."""
    out = tempfile.TemporaryFile(dir=tmp, prefix="cp-")  # noqa: SIM115 - returned
    try:
        src.seek(0)
        with (
            tarfile.open(fileobj=src, mode="r|*") as tin,
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tout,
        ):
            for member in tin:
                member.uid, member.gid = uid, gid
                member.uname = member.gname = ""
                tout.addfile(member, tin.extractfile(member) if member.isreg() else None)
        out.flush()
    except tarfile.TarError as e:
        out.close()
        raise InvalidParameter(f"Error processing tar file({e})") from e
    except BaseException:
        out.close()
        raise
    return out
