"""Attach sessions: a client's stdin/stdout/stderr joined to a container's conmon socket (layer: engine).

Docker's rules live here: which streams a client gets, detach keys (default ctrl-p,ctrl-q, parsed
from stdin on the daemon side), the refusals for paused and restarting containers, attaching before
a container starts (C{docker run} attaches, then starts), and the C{attach} event. The API layer
owns the hijacked connection and the stdcopy framing; it hands this module an L{OutputSink}.

Attaching to a container that is not running registers the session; the container service calls
L{AttachService.before_start} after conmon created the container and before C{crun start}, so no
output can be missed.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorFDSet
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pyd.core.errors import Conflict, InvalidParameter
from pyd.core.records import MountSpec
from pyd.core.seams import Blocking, EventSink
from pyd.drivers.runtime.oci import OciRuntime
from pyd.drivers.streams.attach import (
    PIPE_STDERR,
    PIPE_STDOUT,
    AttachUnavailable,
    SeqPacketConnection,
    connect_attach,
)

log = Logger()

STDOUT = 1
STDERR = 2
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
DEFAULT_DETACH_BYTES = b"\x10\x11"


@attrs.frozen
class StreamTarget:
    """What the stream services need to know about one container, resolved from a reference."""

    id: str
    name: str  # without the leading "/"
    image: str  # as the user named it (event attribute)
    status: str  # created | running | paused | restarting | removing | exited | dead
    pid: int
    tty: bool
    open_stdin: bool
    stdin_once: bool
    bundle: str  # conmon's bundle: config.json (the OCI spec), ctl FIFO
    attach_socket: str
    rootfs: str | None  # the mounted root filesystem, None when not mounted
    labels: dict[str, str] = attrs.field(factory=dict)
    user: str = ""  # Config.User
    working_dir: str = ""
    mounts: tuple[MountSpec, ...] = ()  # volumes, binds and tmpfs, as the runtime gets them
    readonly_rootfs: bool = False
    bind_files: tuple[tuple[str, str], ...] = ()  # (host file, container path): hosts files
    runtime: OciRuntime | None = None  # the OCI runtime it runs under (exec goes through it)

    @property
    def running(self) -> bool:
        """Running (paused and restarting count as running, as in dockerd)."""
        return self.status in ("running", "paused", "restarting")

    def event_attributes(self, **extra: str) -> dict[str, str]:
        """The attributes dockerd puts on container events: labels, image, name, extras."""
        attrs_: dict[str, str] = dict(self.labels)
        attrs_["image"] = self.image
        attrs_["name"] = self.name
        attrs_.update(extra)
        return attrs_


class LogReplay(Protocol):
    """A container's log opened for C{attach?logs=1}, read in bounded batches."""

    async def next_batch(self) -> tuple[list[tuple[int, bytes]], bool]:
        """The next batch of (stream, bytes), and whether more was already written."""
        ...

    def close(self) -> None:
        """Close the log."""
        ...


@implementer(IPushProducer)
class Pause:
    """Back-pressure for one stream: the client's transport pauses it while its buffer is full,
    and the writer awaits L{ready} before each write (the API's response C{Flow} builds on it)."""

    def __init__(self) -> None:
        self.paused = False
        self.stopped = False
        self._waiters: list[Deferred[None]] = []

    def pauseProducing(self) -> None:
        """The transport's buffer is full."""
        self.paused = True

    def resumeProducing(self) -> None:
        """The client read: go on."""
        self.paused = False
        self._wake()

    def stopProducing(self) -> None:
        """The connection is gone."""
        self.stopped = True
        self.paused = False
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    async def ready(self) -> None:
        """Return once the client can take more (at once unless paused)."""
        while self.paused and not self.stopped:
            d: Deferred[None] = Deferred()
            self._waiters.append(d)
            await d


class StreamTargets(Protocol):
    """Implemented by the container service."""

    async def stream_target(self, ref: str) -> StreamTarget:
        """Resolve C{ref} (name, id or id prefix). @raise NotFound: C{No such container: ref}."""
        ...


class OutputSink(Protocol):
    """Where a session's output goes (the API's hijacked connection, with its framing)."""

    def output(self, stream: int, data: bytes) -> None:
        """Bytes of C{stream} (1 stdout, 2 stderr; a TTY's output is all stdout)."""
        ...

    def end(self) -> None:
        """No more output: flush and close."""
        ...

    def register_producer(self, producer: Any) -> None:
        """Let the client's socket pause C{producer} (back-pressure)."""
        ...


# moby/term ascii.go: the names ToBytes knows, in code order (ctrl-@ is 0, ctrl-_ is 31).
_CTRL_NAMES = ["ctrl-@", *(f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1))]
_CTRL_NAMES += ["ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]


def key_bytes(keys: str) -> bytes | None:
    """moby/term's C{ToBytes}: comma-separated keys, each one byte (a single-byte character),
    a C{ctrl-<x>} name exactly as spelt in its table (lower case) or C{DEL}; None when a key is
    none of these (an empty one included)."""
    out = bytearray()
    for key in keys.split(","):
        raw = key.encode()
        if len(raw) == 1:  # Go's len counts bytes: one non-ASCII character is a bad key
            out += raw
        elif key in _CTRL_NAMES:
            out.append(_CTRL_NAMES.index(key))
        elif key == "DEL":
            out.append(127)
        else:
            return None
    return bytes(out)


def parse_detach_keys(keys: str, kind: str = "detach") -> bytes:
    """The detach sequence a request names; dockerd's default (ctrl-p,ctrl-q) for an empty
    or absent one, as moby's C{copyEscapable} falls back to it.

    @raise InvalidParameter: dockerd's C{Invalid detach keys (...) provided} (exec create says
        C{escape}: C{kind}).
    """
    if not keys:
        return DEFAULT_DETACH_BYTES
    out = key_bytes(keys)
    if out is None:
        raise InvalidParameter(f"Invalid {kind} keys ({keys}) provided")
    return out


class DetachScanner:
    """Finds the detach sequence in stdin, holding back bytes that might start it (moby's
    escapeProxy): a partial match that fails is passed on unchanged."""

    def __init__(self, keys: bytes) -> None:
        self._keys = keys
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Return the bytes to pass on and whether the sequence was completed."""
        if not self._keys:
            return data, False
        out = bytearray()
        for b in data:
            candidate = self._held + bytes([b])
            if self._keys.startswith(candidate):
                if candidate == self._keys:
                    self._held = b""
                    return bytes(out), True
                self._held = candidate
            else:
                out += candidate
                self._held = b""
        return bytes(out), False


@attrs.frozen
class AttachOptions:
    """What the client asked for."""

    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    stream: bool = True
    logs: bool = False
    detach_keys: str | None = None


class _ConmonSide(TwistedProtocol):
    """Packets from conmon's attach socket, forwarded to the session."""

    def __init__(self, session: IOSession) -> None:
        self._session = session

    def dataReceived(self, data: bytes) -> None:
        self._session._packet(data)

    def connectionLost(self, reason: Failure = Failure(Exception("lost"))) -> None:  # noqa: B008
        self._session._conmon_closed()


class IOSession:
    """One client joined to one conmon attach socket (a container's or an exec's).

    Output received before L{bind} is kept. Input before the socket is connected is kept too.
    C{done} fires when the session is over (output ended, client gone or detached).
    """

    def __init__(
        self,
        want_stdin: bool,
        want_stdout: bool,
        want_stderr: bool,
        detach_keys: bytes = b"",
        close_stdin_on_eof: bool = True,
    ) -> None:
        self.want_stdin = want_stdin
        self._want = {STDOUT: want_stdout, STDERR: want_stderr}
        self._scanner = DetachScanner(detach_keys)
        self._close_stdin_on_eof = close_stdin_on_eof
        self._sink: OutputSink | None = None
        self._early: list[tuple[int, bytes]] = []
        self._conn: SeqPacketConnection | None = None
        self._early_input: list[bytes] = []
        self._input_eof = False
        self._ended = False
        self.detached = False
        self.done: Deferred[None] = Deferred()
        # Delays the end of output until the caller knows more (an exec's exit code).
        self.hold_end: Deferred[None] | None = None
        # C{logs=1}: the log to send before live output, batch by batch as the client takes
        # them, and what to do once it is sent (connect to conmon, or end).
        self._replay: LogReplay | None = None
        self._replaying = False
        self._after_replay: Callable[[], None] | None = None
        self._pause: Pause | None = None

    # -- conmon side -------------------------------------------------------------------------
    def connect(self, reactor: IReactorFDSet, path: str) -> None:
        """Connect to conmon's socket. @raise AttachUnavailable: nobody listens there."""
        self._conn = connect_attach(reactor, path, _ConmonSide(self))
        if self._sink is not None and not self._replaying:
            self._sink.register_producer(self._conn)
        early, self._early_input = self._early_input, []
        for chunk in early:
            self._conn.write(chunk)
        if self._input_eof:
            self._close_conmon_stdin()

    def _packet(self, data: bytes) -> None:
        if not data:
            return
        stream = STDERR if data[0] == PIPE_STDERR else STDOUT
        if data[0] not in (PIPE_STDOUT, PIPE_STDERR) or not self._want[stream]:
            return
        if self._sink is None or self._replaying:
            self._early.append((stream, data[1:]))
        else:
            self._sink.output(stream, data[1:])

    def replay_first(self, replay: LogReplay, then: Callable[[], None]) -> None:
        """Send C{replay} (the log so far, C{logs=1}) once bound, before any live output;
        then call C{then}."""
        self._replay = replay
        self._after_replay = then

    async def _send_replay(self, sink: OutputSink, replay: LogReplay) -> None:
        """The log, one bounded batch at a time, each once the client took the one before:
        a large log is never held whole (it was read into memory at once before)."""
        pause = self._pause = Pause()
        sink.register_producer(pause)
        try:
            while not self._ended and not pause.stopped:
                batch, more = await replay.next_batch()
                for stream, data in batch:
                    if self._want.get(stream) and not self._ended:
                        sink.output(stream, data)
                if not more:
                    break
                await pause.ready()
        finally:
            replay.close()

    def _replayed(self, result: object) -> None:
        self._replaying = False
        if isinstance(result, Failure):
            log.failure("attach: replaying the log", result)
            self._finish()
            return
        if self._ended or self._sink is None:
            return
        early, self._early = self._early, []
        for stream, data in early:
            self._sink.output(stream, data)
        if self._conn is not None:
            self._sink.register_producer(self._conn)
        after, self._after_replay = self._after_replay, None
        if after is not None:
            after()

    def _conmon_closed(self) -> None:
        self._conn = None
        if self._replaying:
            # the output ended while the log is still being sent: end after it
            self._after_replay = self._finish
            return
        if self.hold_end is not None and not self.hold_end.called:
            self.hold_end.addBoth(lambda _: self._finish())
        else:
            self._finish()

    # -- client side -------------------------------------------------------------------------
    def bind(self, sink: OutputSink) -> None:
        """Start sending output to C{sink} (the log first, with L{replay_first})."""
        self._sink = sink
        replay, self._replay = self._replay, None
        if replay is not None:
            self._replaying = True
            Deferred.fromCoroutine(self._send_replay(sink, replay)).addBoth(self._replayed)
            return
        early, self._early = self._early, []
        for stream, data in early:
            sink.output(stream, data)
        if self._conn is not None:
            sink.register_producer(self._conn)
        if self._ended:
            sink.end()

    def stdin(self, data: bytes) -> None:
        """Client bytes: detach keys are looked for, the rest goes to the container."""
        if not self.want_stdin or self.detached:
            return
        data, detach = self._scanner.feed(data)
        if data:
            if self._conn is not None:
                self._conn.write(data)
            else:
                self._early_input.append(data)
        if detach:
            self.detach()

    def stdin_eof(self) -> None:
        """The client half-closed: close the container's stdin, keep output flowing."""
        if not self.want_stdin or self.detached or self._input_eof:
            return
        self._input_eof = True
        if self._conn is not None:
            self._close_conmon_stdin()

    def _close_conmon_stdin(self) -> None:
        assert self._conn is not None
        if self._close_stdin_on_eof:
            self._conn.loseWriteConnection()

    def client_gone(self) -> None:
        """The client closed the connection: leave the container alone, stop the session."""
        if self._conn is not None:
            self._conn.loseConnection()
        self._finish()

    def detach(self) -> None:
        """Detach keys typed: end the session, the container keeps running."""
        self.detached = True
        if self._conn is not None:
            self._conn.loseConnection()
        self._finish()

    def _finish(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._pause is not None:
            self._pause.stopProducing()  # a replay waiting for the client stops
        if self._sink is not None:
            self._sink.end()
        if not self.done.called:
            self.done.callback(None)


class AttachService:
    """C{POST /containers/{id}/attach}: sessions, pending ones and the attach event."""

    def __init__(
        self,
        targets: StreamTargets,
        events: EventSink,
        reactor: IReactorFDSet,
        blocking: Blocking,
        log_reader: Callable[[str], Awaitable[LogReplay]] | None = None,
    ) -> None:
        self._blocking = blocking
        self._targets = targets
        self._events = events
        self._reactor = reactor
        self._pending: dict[str, list[tuple[IOSession, StreamTarget]]] = {}
        # Opens what a container logged so far for C{logs=1}, to be read in batches.
        self.log_reader = log_reader

    async def attach(self, ref: str, opts: AttachOptions) -> tuple[StreamTarget, IOSession]:
        """Validate and open a session (connected now if the container runs, else at start).

        @raise NotFound: no such container.
        @raise Conflict: paused or restarting (dockerd's messages).
        @raise InvalidParameter: bad detach keys.
        """
        # As moby's ContainerAttach: the keys are checked before the container is looked up.
        keys = parse_detach_keys(opts.detach_keys or "")
        target = await self._targets.stream_target(ref)
        if target.status == "paused":
            raise Conflict(f"container {ref} is paused, unpause the container before attach")
        if target.status == "restarting":
            raise Conflict(f"container {ref} is restarting, wait until the container is running")
        session = IOSession(
            want_stdin=opts.stdin and target.open_stdin,
            want_stdout=opts.stdout,
            want_stderr=opts.stderr,
            # Only a TTY's input is scanned for the keys (moby's CopyStreams): without one every
            # byte reaches the container.
            detach_keys=keys if target.tty else b"",
            # dockerd closes the container's stdin at the client's EOF only with StdinOnce and no TTY.
            close_stdin_on_eof=target.stdin_once and not target.tty,
        )
        session.done.addCallback(self._detach_event, session, target)
        replay = None
        if opts.logs and self.log_reader is not None:
            replay = await self.log_reader(target.id)
        if opts.stream and target.status == "running":
            if replay is not None:
                # dockerd sends the log, then attaches: connect once the log is sent (live
                # output meanwhile would have to be held for a client still reading the log).
                session.replay_first(replay, lambda: self._connect_live(session, target))
            else:
                self._connect_live(session, target)
        elif opts.stream:
            # Not started yet (docker run, start -a) or restarting: join at the next start.
            self._pending.setdefault(target.id, []).append((session, target))
            session.done.addBoth(lambda _: self._forget(target.id, session))
            if replay is not None:
                session.replay_first(replay, lambda: None)
        elif replay is not None:
            session.replay_first(replay, session._finish)
        else:
            session._finish()
        await self._events.emit("container", "attach", target.id, target.event_attributes())
        return target, session

    def _connect_live(self, session: IOSession, target: StreamTarget) -> None:
        try:
            self._connect(session, target)
        except AttachUnavailable as e:
            # It exited between the lookup and now (or its monitor is gone): there is
            # nothing to stream; end at once rather than hang.
            log.info("attach to {cid}: {err}", cid=target.id, err=e)
            session._finish()

    def _detach_event(self, _: None, session: IOSession, target: StreamTarget) -> None:
        # dockerd logs "detach" when the client typed the keys (not when it went away).
        if session.detached:
            self._events.emit("container", "detach", target.id, target.event_attributes())

    def _connect(self, session: IOSession, target: StreamTarget, path: str = "") -> None:
        """Connect to conmon's socket: C{<bundle>/attach} is where conmon binds it (the
        C{<socket dir>/<id>} link to the bundle has a truncated name when paths are long)."""
        candidates = [os.path.join(target.bundle, "attach")]
        for extra in (path, target.attach_socket):
            if extra and extra not in candidates:
                candidates.append(extra)
        error: AttachUnavailable | None = None
        for candidate in candidates:
            try:
                session.connect(self._reactor, candidate)
                return
            except AttachUnavailable as e:
                error = error or e
        assert error is not None
        raise error

    def _forget(self, cid: str, session: IOSession) -> None:
        waiting = self._pending.get(cid)
        if not waiting:
            return
        waiting[:] = [(s, t) for s, t in waiting if s is not session]
        if not waiting:
            del self._pending[cid]

    def has_pending(self, container_id: str) -> bool:
        """Whether clients wait for this container to start."""
        return bool(self._pending.get(container_id))

    async def before_start(self, container_id: str, attach_socket: str) -> None:
        """Called by the container service between C{conmon create} and C{crun start}."""
        for session, target in self._pending.pop(container_id, []):
            try:
                self._connect(session, target, attach_socket)
            except AttachUnavailable as e:
                log.warn("attach to {cid} at start failed: {err}", cid=container_id, err=e)
                session.client_gone()

    async def resize(self, ref: str, height: int, width: int) -> None:
        """Resize the container's TTY through conmon's ctl FIFO; emits C{resize}.

        @raise NotFound: no such container.
        @raise Conflict: not running (dockerd's text).
        """
        target = await self._targets.stream_target(ref)
        if not target.running:
            raise Conflict(f"container {target.id} is not running")
        await self._blocking.run(write_ctl, os.path.join(target.bundle, "ctl"), height, width)
        await self._events.emit(
            "container",
            "resize",
            target.id,
            target.event_attributes(height=str(height), width=str(width)),
        )

    def container_gone(self, container_id: str) -> None:
        """The container was removed (or failed to start): end the sessions still waiting."""
        for session, _target in self._pending.pop(container_id, []):
            session._finish()


def write_ctl(path: str, height: int, width: int) -> None:
    """conmon's resize message on its ctl FIFO (blocking; never waits for a reader)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return  # no monitor listening: the process is gone
    try:
        os.write(fd, f"1 {height} {width}\n".encode())
    except OSError:  # the monitor went away meanwhile: nothing left to resize
        pass
    finally:
        os.close(fd)
