"""Streamed responses: JSON lines (progress, events, stats) and stdcopy framing (layer: api)."""

from __future__ import annotations

import json
import struct
from typing import Any

from twisted.web.iweb import IRequest

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


class JSONLines:
    """Writes one JSON object per line to a streaming response; stops quietly once closed."""

    def __init__(self, request: Any) -> None:
        self._request = request
        self.closed = False
        request.notifyFinish().addBoth(self._finished)
        start_json_stream(request)

    def _finished(self, _: object) -> None:
        self.closed = True

    def write(self, obj: Any) -> None:
        """Write C{obj} as one line, unless the client went away."""
        if not self.closed:
            self._request.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def error(self, message: str) -> None:
        """End-of-stream error in dockerd's in-band shape."""
        self.write({"errorDetail": {"message": message}, "error": message})

    def finish(self) -> None:
        """End the response (idempotent)."""
        if not self.closed:
            self.closed = True
            self._request.finish()
