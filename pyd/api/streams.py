"""Streamed responses: JSON lines (progress, events, stats) and stdcopy framing (layer: api).

Every stream writes with back-pressure: L{Flow} is registered on the request as a streaming
producer, so the transport pauses it once its write buffer (64 KiB) is full. Writers that can
wait (logs, stats) await L{Flow.ready}; writers fed by the engine (progress, events) hold at
most a small buffer (L{JSONLines.HOLD_LIMIT} bytes) for a client that does not read: progress
updates that the next one supersedes are dropped, and a client that lets the rest pile up
beyond the limit is cut off (as dockerd evicts a slow events subscriber). So one client costs
the daemon a small, bounded buffer whatever it does.
"""

from __future__ import annotations

import json
import struct
from collections import deque
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from pyd.engine.streams import Pause

log = Logger()

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
_HDR = struct.Struct(">BxxxL")


def frame(stream: int, data: bytes) -> bytes:
    """One stdcopy frame: 8-byte header (stream id, 3 zero bytes, big-endian size) + payload."""
    return _HDR.pack(stream, len(data)) + data


def frame_header(stream: int, size: int) -> bytes:
    """The 8-byte stdcopy header alone (the payload is written after it)."""
    return _HDR.pack(stream, size)


def start_json_stream(request: IRequest) -> None:
    """Send 200 + C{application/json} headers now, so the client stops waiting for them."""
    request.setResponseCode(200)
    request.setHeader(b"Content-Type", b"application/json")
    request.write(b"")


def abort_client(request: Any) -> None:
    """Drop the connection under C{request} at once (its unsent bytes too)."""
    transport = getattr(getattr(request, "channel", None), "transport", None)
    abort = getattr(transport, "abortConnection", None)
    if callable(abort):
        abort()
    else:
        request.loseConnection()


class Flow(Pause):
    """The response's back-pressure: paused while the client's transport buffer is full.

    Registered on the request as a streaming producer; L{ready} waits while paused. Call
    L{release} before finishing the request.
    """

    def __init__(self, request: Any, on_resume: Any = None) -> None:
        super().__init__()
        self._request = request
        self._on_resume = on_resume
        self._registered = True
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(self._gone)

    def _gone(self, _: object) -> None:
        self.stopProducing()

    def resumeProducing(self) -> None:
        """The client read: go on (C{on_resume} runs between unpausing and waking the writer)."""
        self.paused = False
        if self._on_resume is not None:
            self._on_resume()
        self._wake()

    def release(self) -> None:
        """Unregister from the request (idempotent)."""
        if self._registered:
            self._registered = False
            if not self.stopped:
                self._request.unregisterProducer()


def _supersedable(obj: Any) -> bool:
    """A progress update the next one replaces (pull/push/load byte counts)."""
    return isinstance(obj, dict) and bool(obj.get("progressDetail")) and "error" not in obj


# The line end of dockerd's progress streams (pull, push, load, import, build): moby
# pkg/streamformatter's streamNewline. Events and stats are json.Encoder lines ("\n").
PROGRESS_NEWLINE = b"\r\n"


class JSONLines:
    """Writes one JSON object per line to a streaming response; stops quietly once closed.

    Back-pressure: see the module docstring.
    """

    # Bytes held for a client that does not read before it is cut off.
    HOLD_LIMIT = 1 << 20

    def __init__(self, request: Any, hold_limit: int = 0, newline: bytes = b"\n") -> None:
        self._request = request
        self._newline = newline
        self.closed = False
        self.hold_limit = hold_limit or self.HOLD_LIMIT
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self.dropped = 0
        request.notifyFinish().addBoth(self._finished)
        start_json_stream(request)
        self.flow = Flow(request, on_resume=self._drain)

    def _finished(self, _: object) -> None:
        self.closed = True
        self._held.clear()
        self._held_bytes = 0

    def write(self, obj: Any) -> None:
        """Write C{obj} as one line, unless the client went away (held while it does not read)."""
        if self.closed:
            return
        if not self.flow.paused and not self._held:
            self._request.write(json.dumps(obj, separators=(",", ":")).encode() + self._newline)
            return
        if _supersedable(obj):
            self.dropped += 1
            return
        line = json.dumps(obj, separators=(",", ":")).encode() + self._newline
        self._held.append(line)
        self._held_bytes += len(line)
        if self._held_bytes > self.hold_limit:
            log.info(
                "cutting off a client that does not read its stream ({n} bytes held)",
                n=self._held_bytes,
            )
            self.closed = True
            self._held.clear()
            self._held_bytes = 0
            abort_client(self._request)

    def _drain(self) -> None:
        while self._held and not self.flow.paused and not self.closed:
            line = self._held.popleft()
            self._held_bytes -= len(line)
            self._request.write(line)

    async def ready(self) -> None:
        """Wait until the client took what was written (for writers that can wait)."""
        await self.flow.ready()
        while self._held and not self.closed:
            self._drain()
            await self.flow.ready()

    def error(self, message: str) -> None:
        """End-of-stream error in dockerd's in-band shape."""
        self.write({"errorDetail": {"message": message}, "error": message})

    def finish(self) -> None:
        """End the response once what is held is written (idempotent)."""
        if not self.closed:
            if self._held:
                self._finish_later()
                return
            self.closed = True
            self.flow.release()
            self._request.finish()

    def _finish_later(self) -> None:
        async def wait_then_finish() -> None:
            await self.ready()
            if not self.closed:
                self.closed = True
                self.flow.release()
                self._request.finish()

        Deferred.fromCoroutine(wait_then_finish())
