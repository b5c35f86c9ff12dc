"""Blob bodies (layer: drivers): a download streamed into a sink with sha256 verification and
back-pressure (the response transport is paused while writes are pending), and upload bodies
read through the L{Blocking} seam.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol as TxProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseDone  # twisted.web.client's, without its TLS imports
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from pyd.core.seams import Blocking
from pyd.drivers.registry.wire import _CHUNK, _HIGH_WATER, TransportFailed

log = Logger()


# --- the client -----------------------------------------------------------------------------------


class BlobSink(Protocol):
    """Where a downloaded blob goes; called in the io pool, one call at a time, in order."""

    def write(self, data: bytes) -> None:
        """Append bytes."""
        ...


ProgressFn = Callable[[int], None]


class _Sender(Protocol):
    def __call__(self) -> Deferred[IResponse]: ...


class _StreamToSink(TxProtocol):
    """Receives a response body; hands it to the sink in the io pool in order, hashing it.

    Pauses the transport while more than L{_HIGH_WATER} bytes wait, so a fast registry cannot
    fill memory when the disk is slow.
    """

    def __init__(
        self,
        sink: BlobSink,
        blocking: Blocking,
        progress: ProgressFn | None,
        done: Deferred[tuple[str, int]],
    ) -> None:
        self._sink = sink
        self._blocking = blocking
        self._progress = progress
        self._done = done
        self._hash = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._writing = False
        self._paused = False
        self._ended: Failure | None = None
        self._finished = False
        self._failed: Failure | None = None
        self.received = 0

    def _transport(self) -> Any:
        # The body transport of a response is a producer (pause/resume/stop).
        return self.transport

    def _write_in_thread(self, data: bytes) -> None:
        self._hash.update(data)
        self._sink.write(data)

    def dataReceived(self, data: bytes) -> None:
        """Queue bytes; pause the transport above the high-water mark."""
        if self._failed is not None:
            return
        self.received += len(data)
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self._transport().pauseProducing()
        self._pump()

    def _pump(self) -> None:
        if self._writing:
            return
        if self._failed is not None:
            self._finish()
            return
        if not self._pending:
            if self._ended is not None:
                self._finish()
            return
        data = b"".join(self._pending)
        self._pending = []
        self._pending_size = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self._transport().resumeProducing()
        self._writing = True
        d = self._blocking.run(self._write_in_thread, data)
        d.addCallbacks(self._written, self._write_failed, callbackArgs=(len(data),))

    def _written(self, _: object, n: int) -> None:
        self._writing = False
        if self._progress is not None:
            self._progress(n)
        self._pump()

    def _write_failed(self, f: Failure) -> None:
        self._writing = False
        self._failed = f
        if self.transport is not None and self._ended is None:
            self._transport().stopProducing()
        self._pump()

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]  # twisted's convention: the default is the ResponseDone class, not a Failure
        """The body ended (cleanly or not); finish once the writes drained."""
        self._ended = reason
        self._pump()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._failed is not None:
            self._done.errback(self._failed)
            return
        assert self._ended is not None
        if not self._ended.check(ResponseDone, PotentialDataLoss):
            self._done.errback(TransportFailed(f"blob download interrupted: {self._ended.value}"))
            return
        self._done.callback(("sha256:" + self._hash.hexdigest(), self.received))


@implementer(IBodyProducer)
class _FileProducer:
    """An C{IBodyProducer} reading a file in the io pool, reporting progress as it goes."""

    def __init__(self, path: str, length: int, blocking: Blocking, progress: ProgressFn | None):
        self.length = length
        self._path = path
        self._blocking = blocking
        self._progress = progress
        self._paused: Deferred[None] | None = None
        self._stopped = False

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """Read and write the whole file; fires when done."""
        return Deferred.fromCoroutine(self._produce(consumer))

    async def _produce(self, consumer: Any) -> None:
        f = await self._blocking.run(open, self._path, "rb")
        try:
            while not self._stopped:
                if self._paused is not None:
                    await self._paused
                data = await self._blocking.run(f.read, _CHUNK)
                if not data:
                    break
                consumer.write(data)
                if self._progress is not None:
                    self._progress(len(data))
        finally:
            await self._blocking.run(f.close)

    def pauseProducing(self) -> None:
        """The transport's buffer is full."""
        if self._paused is None:
            self._paused = Deferred()

    def resumeProducing(self) -> None:
        """The transport drained."""
        d, self._paused = self._paused, None
        if d is not None:
            d.callback(None)

    def stopProducing(self) -> None:
        """The request was abandoned."""
        self._stopped = True
        self.resumeProducing()
