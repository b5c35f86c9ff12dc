"""A request body handed on while it arrives, for the routes that stream one (layer: api).

twisted.web gathers a whole body before the request is processed. For C{PUT
/containers/{id}/archive} that made C{docker cp} into a container upload the whole tar before
extraction began, where dockerd pipes the body into its untar process as it arrives.
L{pyd.api.root.ApiRequest} processes such a request once its headers are in (the route and the
guard decide on the parsed request, as for any other), and its body is this object: chunks are
kept (the connection paused past L{HIGH_WATER}) until the handler hands it a pipe with
L{StreamedBody.feed}, then written to that pipe as they arrive, the connection paused while the
pipe is full. Nothing of the body is acted on until the handler asks for it, so never before the
route, the guard and the handler's own checks have decided on the parsed request.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IReactorFDSet, IWriteDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

# Bytes kept (before a pipe is given) or queued for the pipe before the client's connection is
# paused, and the level at which it is resumed.
HIGH_WATER = 1 << 20
LOW_WATER = 256 << 10
# Bytes gathered before one write to the pipe (the body's end writes what is left). The channel
# decodes a chunked body in pieces of a few KiB to 32 KiB; a write per piece woke the helper for
# each (~1,600 writes and as many reads for a 32 MiB cp), which on a loaded machine cost more
# than the streaming saved.
BATCH = 256 << 10


@implementer(IWriteDescriptor)
class StreamedBody:
    """The body of one streamed request: C{write} from the channel, C{feed} by the handler."""

    def __init__(self, reactor: IReactorFDSet, transport: Any) -> None:
        self._reactor = reactor
        self._transport = transport  # the client's connection: paused and resumed
        self._queue: deque[bytes | memoryview] = deque()
        self._queued = 0
        self._paused = False
        self._complete = False  # the whole body has arrived
        self._dropping = False  # the rest is discarded (answered, stopped or gone)
        self._fd = -1
        self._watching = False
        self._done: Deferred[None] | None = None
        self._lost = False  # the connection is gone: never resumed again
        self.received = 0

    # -- the channel's side (twisted.web writes the body to C{request.content}) --

    def write(self, data: bytes) -> None:
        """One piece of the body, as the channel decodes it."""
        self.received += len(data)
        if self._dropping or not data:
            return
        self._queue.append(data)
        self._queued += len(data)
        if self._fd >= 0 and not self._watching:  # a full pipe is written when it has room
            self._flush()
        if self._queued > HIGH_WATER:
            # again when already paused: twisted.web's channel resumes its transport on its own
            # (its response's write buffer drained), and a paused transport reads nothing
            self._paused = True
            self._transport.pauseProducing()

    def end(self) -> None:
        """The body is complete."""
        self._complete = True
        if self._fd >= 0:
            self._flush()

    def close(self) -> None:
        """The request is over (twisted.web closes its content when it is done or its
        connection is gone): the pipe is closed, so before the body's end the reader sees it
        end early, and whoever waits on L{feed} gets L{ConnectionLost}."""
        self._lost = True
        if not self._complete:
            self._finish(Failure(ConnectionLost("the client went away before the body's end")))
        else:
            self._finish(None)

    def drop(self) -> None:
        """Nothing more is wanted (the request was answered, or its reader ended): the rest of
        the body is read and discarded, and the pipe is closed."""
        self._finish(None)

    # -- the handler's side --

    def feed(self, fd: int) -> Deferred[None]:
        """Write the body to C{fd} (owned from now on, closed at the end): what came so far,
        then each piece as it comes. Fires once the body's end was written, with
        L{ConnectionLost} when the client went away first; stops (fires) at L{drop}."""
        done: Deferred[None] = Deferred()
        if self._fd >= 0 or self._done is not None:
            os.close(fd)
            done.errback(RuntimeError("the body is already being fed"))
            return done
        if self._dropping:
            os.close(fd)
            done.callback(None)
            return done
        self._done = done
        self._fd = fd
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a file's writes are whole: never watched
            os.set_blocking(fd, False)
        self._flush()
        return done

    # -- IWriteDescriptor (the pipe, watched by the reactor while it is full) --

    def fileno(self) -> int:
        """The pipe's write end."""
        return self._fd

    def logPrefix(self) -> str:
        """For the reactor's log lines."""
        return "StreamedBody"

    def doWrite(self) -> None:
        """The pipe has room again."""
        self._flush()

    def connectionLost(self, reason: Failure) -> None:
        """The reactor gave up on the pipe: nothing more is written to it."""
        self._finish(None)

    def _flush(self) -> None:
        """Write what is queued, in writes of at least L{BATCH} bytes until the body's end,
        until the pipe is full (then watch it for room)."""
        blocked = False
        while self._fd >= 0 and self._queue and (self._complete or self._queued >= BATCH):
            if len(self._queue) > 1 and len(self._queue[0]) < BATCH:
                joined = b"".join(self._queue)  # one write for many small pieces
                self._queue.clear()
                self._queue.append(joined)
            data = self._queue[0]
            try:
                n = os.write(self._fd, data)
            except BlockingIOError:
                blocked = True
                break
            except OSError as e:
                # EPIPE: the reader is gone, and said what it wanted in its answer. Anything
                # else (a spool file's full disk) fails the feed; the rest is discarded.
                self._finish(None if e.errno == errno.EPIPE else Failure(e))
                return
            self._queued -= n
            if n == len(data):
                self._queue.popleft()
            else:
                self._queue[0] = memoryview(data)[n:]
                blocked = True
                break
        if self._fd < 0:
            return
        if blocked != self._watching:  # watched only while full: never for held pieces
            self._watching = blocked
            if blocked:
                self._reactor.addWriter(self)
            else:
                self._reactor.removeWriter(self)
        if self._paused and self._queued <= LOW_WATER:
            self._paused = False
            self._transport.resumeProducing()
        if self._complete and not self._queue:
            self._finish(None)

    def _finish(self, failure: Failure | None) -> None:
        """Close the pipe, discard the rest, resume the connection, tell the feeder."""
        self._dropping = True
        self._queue.clear()
        self._queued = 0
        if self._watching:
            self._watching = False
            self._reactor.removeWriter(self)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._paused:
            self._paused = False
            if not self._lost:  # the rest is read and discarded
                self._transport.resumeProducing()
        done, self._done = self._done, None
        if done is not None:
            if failure is None:
                done.callback(None)
            else:
                done.errback(failure)
