"""The single exception -> HTTP status table (layer: api)."""

from __future__ import annotations

import json
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from pyd.core import errors

log = Logger()

STATUS: list[tuple[type[BaseException], int]] = [
    (errors.NotModified, 304),
    (errors.NotFound, 404),
    (errors.InvalidParameter, 400),
    (errors.Conflict, 409),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.Unavailable, 503),
    (errors.Unsupported, 501),
    (errors.SystemError_, 500),
]


def status_for(exc: BaseException) -> int:
    """The HTTP status for a domain error (500 for anything unclassified)."""
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 500


# What a client reads for a failure pyd did not classify: never the exception's class or text
# (they name internals, errno texts and host paths); the daemon's log has the traceback.
INTERNAL_ERROR = "internal error: see the daemon's log"


def public_message(exc: BaseException) -> str:
    """The message a client may read for C{exc}: a domain error's own text, else
    L{INTERNAL_ERROR}. Streams that report errors in-band use this too."""
    if isinstance(exc, errors.PydError):
        return exc.message
    return INTERNAL_ERROR


def error_body(message: str) -> bytes:
    """dockerd's error body: C{{"message": ...}} and a newline."""
    return json.dumps({"message": message}).encode() + b"\n"


def write_error(request: Any, exc: BaseException) -> bytes:
    """Set status and headers for C{exc} on C{request}; return the body to write."""
    code = status_for(exc)
    request.setResponseCode(code)
    if code == 304:
        return b""
    message = public_message(exc)
    body = error_body(message)
    request.setHeader(b"Content-Type", b"application/json")
    # A whole answer with its length, as dockerd's: docker-py takes a chunked answer to a
    # streaming call (build, push) for a stream and raises only on one that is not.
    request.setHeader(b"Content-Length", str(len(body)).encode())
    return body


def handle_failure(request: IRequest, failure: Failure) -> bytes:
    """Klein error handler body: log the unexpected, render the JSON error."""
    exc = failure.value
    assert exc is not None
    if not isinstance(exc, errors.PydError):
        log.failure(
            "Unhandled error serving {method} {uri}",
            failure,
            method=request.method,
            uri=request.uri,
        )
    return write_error(request, exc)
