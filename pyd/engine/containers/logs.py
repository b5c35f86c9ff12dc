"""Container logs (layer: engine): rotation of the json-file log as it grows (max-size,
max-file), reading with since/until/tail, following a running container.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pyd.core.errors import (
    InvalidParameter,
    PydError,
)
from pyd.core.records import (
    Container,
)
from pyd.drivers.journald import JournaldSender
from pyd.drivers.syslog import SyslogError, SyslogSender, TlsFiles
from pyd.engine.containers import runconfig
from pyd.engine.containers.base import ContainerBase, LogsRequest, _LogWatch, _now_nano
from pyd.engine.containers.logfiles import (
    LogEntry,
    LogTail,
    entry_filter,
    rotate_log_files,
    rotation_step,
    select_entries,
)
from pyd.engine.containers.logforward import LogForwarder, render_tag
from pyd.engine.spec import rules
from pyd.engine.spec.records import LogConfig

log = Logger()


ROTATION_RESEND = 2.0  # seconds without conmon carrying out a reopen: ask again


# Bytes of log one read takes: what one reader holds at a time, however large the log.
LOG_READ_CHUNK = 256 << 10

LOG_BACKSTOP = 10  # conmon's own --log-size-max: this many times max-size x max-file


class ContainerLogs(ContainerBase):
    """Log rotation, reading and following."""

    # --- logs ------------------------------------------------------------------------------------

    def _log_config(self, lc: LogConfig) -> dict[str, Any]:
        """dockerd's C{mergeAndVerifyLogConfig}: the daemon's driver when none is given, and its
        options under those of the container when the driver is the daemon's."""
        ltype = lc.type or self.settings.log_driver or "json-file"
        cfg = dict(lc.config)
        if ltype == (self.settings.log_driver or "json-file"):
            for k, v in self.settings.log_opts.items():
                cfg.setdefault(k, v)
        return {"Type": ltype, "Config": cfg}

    def _watch_log(self, cid: str, log_path: str, plan: runconfig.LogPlan) -> Deferred[None] | None:
        """Rotate C{cid}'s log as it grows (see pyd.engine.containers.logfiles); forward it.

        @return: when forwarding, fires once the forwarder starts after the file's end (the
            container must not write before, or its first lines would be skipped).
        """
        if cid in self._log_watches:
            return None
        ctl = self.runtime.ctl_path(os.path.dirname(log_path))
        w = _LogWatch(log_path, plan.max_size, plan.max_files, ctl)
        self._log_watches[cid] = w
        base = os.path.basename(log_path)

        rotates = plan.rotates
        ready = None
        if plan.forward is not None:
            ready = self._start_forwarding(cid, log_path, plan.driver, plan.forward, w)

        def changed(name: str) -> None:
            if name == base:
                if rotates:
                    self._rotate_log(cid)
                if w.forwarder is not None:
                    self._forward_log(cid)

        if self.log_watcher is not None:
            w.cancel = self.log_watcher.watch(os.path.dirname(log_path), changed)
        return ready

    def _rotate_log(self, cid: str) -> None:
        """One L{rotate_log_files} at a time per container; a rotation seen meanwhile reruns it."""
        w = self._log_watches.get(cid)
        if w is None or cid in self.log_space.stopped:
            return  # a stopped log does not grow (and cannot be linked): rotate on resume
        if w.busy:
            w.again = True
            return
        w.busy = True

        now = self._clock.seconds()
        resend = bool(w.requested) and now - w.requested_at > ROTATION_RESEND

        def stepped(result: tuple[int, int]) -> None:
            requested, w.known = result
            if requested and (requested != w.requested or resend):
                w.requested_at = now
            w.requested = requested

        def done(_: object) -> None:
            w.busy = False
            if w.again:
                w.again = False
                self._rotate_log(cid)

        d = self._blocking.run(
            rotation_step, w.path, w.max_files, w.max_size, w.ctl, w.requested, resend, w.known
        )
        d.addCallback(stepped)
        d.addErrback(lambda f: log.failure("log rotation of {cid} failed", f, cid=cid))
        d.addBoth(done)

    def _unwatch_log(self, cid: str) -> _LogWatch | None:
        w = self._log_watches.pop(cid, None)
        if w is not None and w.cancel is not None:
            w.cancel()
        if w is not None and w.forwarder is not None:
            # what the container wrote last still goes out, then the connection closes
            fwd, w.forwarder = w.forwarder, None
            d = self._blocking.run(fwd.drain)
            d.addErrback(lambda f: log.failure("syslog of {cid} failed", f, cid=cid))
            d.addBoth(lambda _: self._blocking.run(fwd.close))
        return w

    # --- syslog (dual logging: the local file stays what docker logs reads) ----------------------

    def _start_forwarding(
        self, cid: str, log_path: str, driver: str, opts: Mapping[str, str], w: _LogWatch
    ) -> Deferred[None] | None:
        c = self._cache.get(cid)
        tag = render_tag(opts.get("tag", ""), c, self.settings.host_hostname) if c else cid[:12]
        sender: Any
        if driver == "journald":
            sender = JournaldSender(
                {
                    "CONTAINER_ID": cid[:12],
                    "CONTAINER_ID_FULL": cid,
                    "CONTAINER_NAME": c.name.lstrip("/") if c else "",
                    "CONTAINER_TAG": tag,
                    "IMAGE_NAME": c.image_ref if c else "",
                    "SYSLOG_IDENTIFIER": tag,
                },
                self.settings.journal_socket,
            )
        elif (run := self._runs.get(cid)) is not None and run.syslog is not None:
            sender, run.syslog = run.syslog, None  # connected at start
        else:
            try:
                sender = SyslogSender(
                    opts.get("syslog-address", ""),
                    opts.get("syslog-facility", ""),
                    opts.get("syslog-format", ""),
                    TlsFiles.of(opts),
                )
            except SyslogError as e:
                log.warn("syslog of {cid}: {err}", cid=cid, err=str(e))
                return None
        w.forwarder = LogForwarder(LogTail(log_path), sender, tag)
        # a restarted container appends to its log: forward only what it writes from now on
        d = self._blocking.run(w.forwarder.skip_existing)
        d.addErrback(lambda f: log.failure("syslog of {cid} failed", f, cid=cid))
        return d

    def _forward_log(self, cid: str) -> None:
        w = self._log_watches.get(cid)
        if w is None or w.forwarder is None:
            return
        fwd = w.forwarder
        if fwd.busy:
            fwd.again = True
            return
        fwd.busy = True

        def done(_: object) -> None:
            fwd.busy = False
            if fwd.again:
                fwd.again = False
                self._forward_log(cid)

        d = self._blocking.run(fwd.drain)
        d.addErrback(lambda f: log.warn("syslog of {cid}: {err}", cid=cid, err=f.getErrorMessage()))
        d.addBoth(done)

    def _log_resumed(self, cid: str) -> None:
        if cid in self._log_watches:
            self._rotate_log(cid)

    def _log_path(self, c: Container) -> str:
        return c.extra.get("log_path") or os.path.join(self.bundle_dir(c.id), "ctr.log")

    async def _stop_log_rotation(self, cid: str) -> None:
        """The container stopped: stop watching, name and prune its last rotations."""
        c = self._cache.get(cid)
        if c is not None:
            # conmon of the next run opens the file: it must be writable again
            await self.log_space.untrack(cid, self._log_path(c))
        w = self._unwatch_log(cid)
        if w is None:
            return
        try:
            await self._blocking.run(rotate_log_files, w.path, w.max_files)
        except OSError as e:
            log.warn("log rotation of {cid}: {err}", cid=cid, err=e)

    async def _resume_log_rotation(self, c: Container) -> None:
        """Daemon start, container still running: catch up with rotations, watch again."""
        try:
            plan = runconfig.log_plan(self.spec_of(c).logging)
        except PydError:
            return
        log_path = self._log_path(c)
        if plan.driver != "none":
            # a log the previous daemon stopped is stopped or resumed by the first look
            self.log_space.track(c.id, log_path)
        if not plan.rotates and plan.forward is None:
            return
        self._watch_log(c.id, log_path, plan)
        if plan.rotates:
            self._rotate_log(c.id)

    async def open_logs(self, ref: str, req: LogsRequest) -> tuple[Container, LogTail]:
        """The container and its log, opened where C{req} starts reading: with C{req.tail},
        the log is scanned backwards from its end for that many lines (never read whole).

        Read it with L{next_logs}; close it (or hand it to L{follow_logs}, which closes it).
        """
        c = self.resolve(ref)
        logging = self.spec_of(c).logging
        ltype = logging.type or "json-file"
        cache_off = ltype in ("syslog", "journald") and rules.go_bool_ok(
            str(logging.config.get("cache-disabled", "false"))
        )
        if ltype == "none" or cache_off:
            raise InvalidParameter("configured logging driver does not support reading")
        tail = LogTail(c.extra.get("log_path") or os.path.join(self.bundle_dir(c.id), "ctr.log"))
        if req.tail is not None and req.tail >= 0:
            # dockerd counts the tail's lines over both streams and filters the streams
            # afterwards (tail=2 of "out, err" with stdout=1 gives "out" alone)
            keep = entry_filter(True, True, req.since_nano, req.until_nano)
            try:
                await self._blocking.run(tail.seek_tail, req.tail, keep)
            except BaseException:
                tail.close()
                raise
        return c, tail

    async def next_logs(self, tail: LogTail, req: LogsRequest) -> tuple[list[LogEntry], bool]:
        """The next bounded batch of entries matching C{req} (at most L{LOG_READ_CHUNK} bytes
        of log are read), and whether more was already written."""
        got = await self._blocking.run(tail.read, LOG_READ_CHUNK)
        entries = select_entries(got, req.stdout, req.stderr, req.since_nano, req.until_nano, None)
        return entries, tail.more

    async def read_logs(
        self, ref: str, req: LogsRequest
    ) -> tuple[Container, list[LogEntry], LogTail]:
        """Everything logged so far that matches C{req}, and the open log to follow it with.

        For internal readers of small logs (build steps); the API streams (and C{attach?logs=1})
        with L{open_logs} and L{next_logs}. With C{req.follow} the caller hands the tail to
        L{follow_logs}, which closes it; without, the tail comes back closed.
        """
        c, tail = await self.open_logs(ref, req)
        entries: list[LogEntry] = []
        try:
            while True:
                batch, more = await self.next_logs(tail, req)
                entries.extend(batch)
                # a follower takes the rest from L{follow_logs}, which waits for its client:
                # reading on here would chase a container that writes faster than we read
                if not more or req.follow:
                    break
        finally:
            if not req.follow:
                tail.close()
        return c, entries, tail

    async def follow_logs(
        self,
        c: Container,
        req: LogsRequest,
        tail: LogTail,
        write: Callable[[list[LogEntry]], None],
        closed: Callable[[], bool],
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Keep writing new entries until the container stops (or the client goes away).

        The tail's open descriptor keeps the log readable after the container is removed
        (docker-py's C{run(remove=True)} removes before it reads the stream). The follower
        polls, and is woken at once when the container exits or is removed. C{ready} (the
        client's back-pressure) is awaited before each read: a client that does not read
        makes the follower wait, not the daemon buffer.
        """
        interval = 0.05
        # Once the exit is seen one last read takes the rest: conmon drains the container's
        # stdio and syncs the log before it writes the exit file (conmon.c: drain_stdio,
        # sync_logs, then the exit file), so nothing is written after it.
        try:
            while not closed():
                if ready is not None:
                    await ready()
                    if closed():
                        return
                cur = self._cache.get(c.id)
                alive = cur is not None and (cur.state.running or cur.state.status == "restarting")
                got, more = await self.next_logs(tail, req)
                write(got)
                if req.until_nano is not None and _now_nano(self._clock) > req.until_nano:
                    return
                if more:
                    continue
                if not alive:
                    return
                interval = 0.05 if got else min(interval * 1.5, 0.25)
                await self._sleep_or_wake(c.id, interval)
        finally:
            tail.close()

    async def _sleep_or_wake(self, cid: str, delay: float) -> None:
        """Sleep C{delay} seconds, or less if the container's state changes meanwhile."""
        d: Deferred[None] = Deferred()

        def fire() -> None:
            if not d.called:
                d.callback(None)

        call = self._clock.callLater(delay, fire)
        wakers = self._log_wakers.setdefault(cid, [])
        wakers.append(fire)
        try:
            await d
        finally:
            if call.active():
                call.cancel()
            if fire in wakers:
                wakers.remove(fire)
            if not wakers:
                self._log_wakers.pop(cid, None)

    def _wake_log_followers(self, cid: str) -> None:
        for fire in list(self._log_wakers.get(cid, ())):
            fire()
