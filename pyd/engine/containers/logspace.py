"""The free-space reserve for container logs (layer: engine): log writing stops while the data
root's filesystem has less free than min-free-space, and resumes once it has enough again.

conmon writes the logs and has no switch to pause them, so pyd stops them through the file:
the current log file of each running container is given the immutable attribute
(C{FS_IOC_SETFLAGS}); conmon's writes then fail (EPERM), conmon drops the chunk and goes on
draining the container's output, so the container never blocks, and nothing already written is
lost. The attribute is cleared when space is back, when the container stops (conmon of the next
run must open the file), and before a removal. A filesystem that keeps the attribute without
enforcing it on open descriptors (tmpfs) is found by a probe and reported once: there the
reserve cannot stop logs.

The filesystem is checked every L{CHECK_EVERY} seconds while a logging container runs, so a
container writing faster than the reserve per second can still overshoot it by that much.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from pyd.core.seams import Blocking, Clock

log = Logger()

CHECK_EVERY = 1.0  # seconds between two looks at the filesystem while logs are written

_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_IMMUTABLE_FL = 0x00000010
_PROBE = ".pyd-log-space-probe"


def _set_immutable(path: str, on: bool) -> bool:
    """Give C{path} the immutable attribute or take it away (blocking).

    @return: whether the attribute is now as asked (False: no such file).
    @raise OSError: the filesystem has no such attribute (ENOTTY, EOPNOTSUPP) or another error.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        raw = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("i", 0))
        flags = struct.unpack("i", raw)[0]
        wanted = flags | _FS_IMMUTABLE_FL if on else flags & ~_FS_IMMUTABLE_FL
        if wanted != flags:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", wanted))
        return True
    finally:
        os.close(fd)


def stop_writes(path: str) -> bool:
    """Make the log file C{path} refuse writes, also through descriptors already open."""
    return _set_immutable(path, True)


def allow_writes(path: str) -> None:
    """Let C{path} be written again (nothing when it does not exist or has no such attribute)."""
    try:
        _set_immutable(path, False)
    except OSError as e:
        if e.errno not in (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL):
            raise


def enforced(directory: str) -> bool:
    """Whether the filesystem of C{directory} refuses writes to an immutable file through a
    descriptor opened before (ext4, xfs, btrfs do; tmpfs keeps the flag and writes anyway)."""
    probe = os.path.join(directory, _PROBE)
    allow_writes(probe)  # one a killed daemon left behind, still immutable
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            stop_writes(probe)
        except OSError:
            return False
        try:
            os.write(fd, b"x")
        except PermissionError:
            return True
        return False
    finally:
        os.close(fd)
        allow_writes(probe)
        os.unlink(probe)


def free_bytes(path: str) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of C{path}."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class LogSpaceGuard:
    """Stops and resumes the log writing of the running containers as the reserve demands.

    @ivar keep_free: the reserve in bytes (0: the guard does nothing).
    @ivar stopped: the containers whose log writing is stopped now.
    """

    def __init__(
        self,
        keep_free: int,
        root: str,
        blocking: Blocking,
        clock: Clock,
        on_resume: Callable[[str], None] = lambda cid: None,
        *,
        free: Callable[[str], int] = free_bytes,
        stop: Callable[[str], bool] = stop_writes,
        allow: Callable[[str], None] = allow_writes,
        probe: Callable[[str], bool] = enforced,
    ) -> None:
        """@param root: a directory on the data root's filesystem (where the logs are).
        @param on_resume: called with a container id when its log may be written again.
        @param free: the bytes free on a path's filesystem; C{stop}, C{allow}: L{stop_writes},
            L{allow_writes}; C{probe}: L{enforced} (tests give fakes of the four)."""
        self.keep_free = keep_free
        self._root = root
        self._blocking = blocking
        self._clock = clock
        self._on_resume = on_resume
        self._logs: dict[str, str] = {}  # container id -> the log file conmon writes
        self.stopped: set[str] = set()
        # tracked since the last look: their file may still carry the attribute from a daemon
        # killed while it was stopped (the first look with space to spare takes it away)
        self._fresh: set[str] = set()
        self._enforced: bool | None = None  # the probe's answer, once asked
        self._loop: LoopingCall | None = None
        self._pending: Deferred[None] | None = None  # the look under way
        self._warned = False
        self._free, self._stop, self._allow, self._probe = free, stop, allow, probe

    def track(self, cid: str, log_path: str) -> None:
        """C{cid} runs and conmon writes its log at C{log_path}: keep it within the reserve."""
        if not self.keep_free:
            return
        self._logs[cid] = log_path
        self._fresh.add(cid)
        if self._loop is None:
            self._loop = LoopingCall(self.check)
            self._loop.clock = self._clock  # type: ignore[assignment]  # Clock is IReactorTime's slice
            d = self._loop.start(CHECK_EVERY, now=True)
            d.addErrback(lambda f: log.failure("the log space check failed", f))

    async def untrack(self, cid: str, log_path: str) -> None:
        """C{cid} stopped (or is removed): its log file must be writable by its next run."""
        self._logs.pop(cid, None)
        self.stopped.discard(cid)
        self._fresh.discard(cid)
        if not self._logs and self._loop is not None:
            loop, self._loop = self._loop, None
            if loop.running:
                loop.stop()
        # (also without a reserve: one configured before a restart may have stopped it)
        if self._pending is not None:
            # a look under way may stop this file after we made it writable: wait for it
            await self._pending
        try:
            await self._blocking.run(self._allow, log_path)
        except OSError as e:
            log.warn("log of {cid}: cannot make it writable: {err}", cid=cid, err=e.strerror)

    def check(self) -> None:
        """Look at the filesystem once and stop or resume the logs (one look at a time)."""
        if self._pending is not None or not self._logs or self._enforced is False:
            return
        pending: Deferred[None] = Deferred()
        self._pending = pending
        fresh, self._fresh = self._fresh, set()
        d = self._blocking.run(self._look, dict(self._logs), set(self.stopped), fresh)

        def done(changed: tuple[set[str], set[str], int] | None) -> None:
            self._pending = None
            if changed is None:
                if not self._warned:
                    self._warned = True
                    log.warn(
                        "min-free-space cannot stop container logs: the data root's "
                        "filesystem does not enforce the immutable attribute (tmpfs?)"
                    )
                return
            newly_stopped, resumed, free = changed
            for cid in sorted(newly_stopped):
                if cid in self._logs:
                    self.stopped.add(cid)
                    log.warn(
                        "container {cid}: log writing stopped: the data root's filesystem has "
                        "{free} bytes free, less than the min-free-space reserve of {keep} bytes",
                        cid=cid,
                        free=free,
                        keep=self.keep_free,
                    )
            for cid in sorted(resumed):
                self.stopped.discard(cid)
                if cid in self._logs:
                    log.info(
                        "container {cid}: log writing resumed: {free} bytes free on the data "
                        "root's filesystem (min-free-space {keep})",
                        cid=cid,
                        free=free,
                        keep=self.keep_free,
                    )
                    self._on_resume(cid)

        def failed(f: Failure) -> None:
            self._pending = None
            self._fresh |= {cid for cid in fresh if cid in self._logs}  # look again next time
            log.failure("the log space check failed", f)

        d.addCallbacks(done, failed)
        d.addBoth(lambda _: pending.callback(None))

    def _look(
        self, logs: dict[str, str], stopped: set[str], fresh: set[str]
    ) -> tuple[set[str], set[str], int] | None:
        """(io pool) Which logs to stop, which to resume, and the bytes free; None when the
        filesystem cannot stop them."""
        if self._enforced is None:
            self._enforced = self._probe(self._root)
        if not self._enforced:
            return None
        free = self._free(self._root)
        # resume a little above the reserve, so a log does not flap at its edge
        if free < self.keep_free or (stopped and free < self.keep_free + self.keep_free // 20):
            newly = set()
            for cid, path in logs.items():
                # conmon may have opened a new file since (a rotation): stop the current one
                if self._stop(path) and cid not in stopped:
                    newly.add(cid)
            return newly, set(), free
        for cid in stopped | fresh:
            if cid in logs:
                self._allow(logs[cid])
        return set(), set(stopped), free
