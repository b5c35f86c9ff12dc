"""What every router shares: a Klein app with pyd's error handling (layer: api).

A router is a class with a class-level C{app = make_app()}, C{@app.route(...)} methods (C{async def},
parse -> engine -> render) and a C{prefixes} tuple naming the first path segments it serves. The
root dispatches on the first segment, after stripping the C{/vX.Y} prefix.
"""

from __future__ import annotations

from typing import Any, Protocol

from klein import Klein
from twisted.python.failure import Failure
from twisted.web.resource import IResource
from werkzeug.exceptions import HTTPException

from pyd.api.errors import error_body, handle_failure


def make_app() -> Klein:
    """A Klein app whose errors render as dockerd's C{{"message": ...}} bodies."""
    app = Klein()

    @app.handle_errors(Exception)  # type: ignore[arg-type]  # variadic: bound and unbound calls
    def _on_error(*args: Any) -> bytes:
        # Klein passes (instance, request, failure) when bound, (request, failure) otherwise.
        request, failure = args[-2], args[-1]
        assert isinstance(failure, Failure)
        if isinstance(failure.value, HTTPException):
            code = failure.value.code or 500
            request.setResponseCode(code)
            request.setHeader(b"Content-Type", b"application/json")
            return error_body("page not found" if code == 404 else str(failure.value.description))
        return handle_failure(request, failure)

    return app


class Router(Protocol):
    """One area of the API."""

    prefixes: tuple[str, ...]

    def resource(self) -> IResource:
        """The Klein resource serving this router's routes."""
        ...


def api_version(request: Any) -> tuple[int, int]:
    """The API version the request asked for (set by the root; current when unversioned)."""
    v: tuple[int, int] = getattr(request, "pyd_api_version", (1, 50))
    return v
