"""What every router shares: a Klein app with pyd's error handling (layer: api).

A router is a class with a class-level C{app = make_app()}, C{@app.route(...)} methods (C{async def},
parse -> engine -> render) and a C{prefixes} tuple naming the first path segments it serves. The
root dispatches on the first segment, after stripping the C{/vX.Y} prefix.

Each route declares the least role that may call it, where it is defined (L{role}); the root
matches the request to its route once (L{match_route}) and hands that same route to the
authorization guard and to the dispatch, so the rules decide on what will run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import attrs
from klein import Klein
from twisted.python.failure import Failure
from twisted.web.resource import IResource
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from pyd.api.errors import error_body, handle_failure


def make_app() -> Klein:
    """A Klein app whose errors render as dockerd's C{{"message": ...}} bodies."""
    app = Klein()

    @app.handle_errors(Exception)  # type: ignore[arg-type]  # variadic: bound and unbound calls
    def _on_error(*args: Any) -> bytes:
        # Klein passes (instance, request, failure) when bound, (request, failure) otherwise.
        request, failure = args[-2], args[-1]
        assert isinstance(failure, Failure)
        if isinstance(failure.value, RequestRedirect):
            # a path with empty segments (C{/networks//x}): dockerd's router (gorilla mux)
            # answers 301 with the cleaned path in Location; werkzeug's 308 had none
            target = urlsplit(failure.value.new_url)
            _, sep, query = bytes(request.uri).partition(b"?")
            location = target.path.encode("utf-8") + (b"?" + query if sep else b"")
            request.setResponseCode(301)
            request.setHeader(b"Location", location)
            return b""
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


ROLES = ("viewer", "operator", "admin")  # least to most powerful
_F = TypeVar("_F", bound=Callable[..., Any])


def role(minimum: str, *, reads: str | None = None) -> Callable[[_F], _F]:
    """Declare the least role that may call the route(s) of the decorated handler.

    Put it under the C{@app.route(...)} lines. C{reads}: a different least role for GET and
    HEAD (a handler that serves several methods). A route without a declaration is admin-only.
    """
    if minimum not in ROLES or (reads is not None and reads not in ROLES):
        raise ValueError(f"unknown role {minimum!r}/{reads!r}")

    def mark(f: _F) -> _F:
        f.pyd_role = (minimum, reads or minimum)  # type: ignore[attr-defined]  # a role mark stored on the handler function for the router
        return f

    return mark


@attrs.frozen
class Route:
    """The route a request will be dispatched to: its router, rule, arguments, least role."""

    router: Any
    rule: str  # werkzeug's rule text, e.g. "/containers/<string:ref>/exec"
    args: dict[str, Any]
    least_role: str

    def parts(self) -> tuple[str, str, str]:
        """(first segment, the first argument's value, the rule after that argument): for
        C{/containers/<string:ref>/attach/ws}, C{("containers", <ref>, "attach/ws")}; for a
        rule without arguments, C{("containers", "", "create")}."""
        segments = self.rule.strip("/").split("/")
        for i, seg in enumerate(segments):
            if seg.startswith("<"):
                name = seg.strip("<>").split(":")[-1]
                return segments[0], str(self.args.get(name, "")), "/".join(segments[i + 1 :])
        return segments[0], "", "/".join(segments[1:])


def match_route(routers: Iterable[Any], method: str, path_info: str) -> Route | None:
    """The route of the first router whose URL map matches, as Klein will match it (None: no
    handler will run: Klein answers 404, 405 or a redirect to the merged-slashes URL)."""
    for router in routers:
        url_map = getattr(getattr(router, "app", None), "url_map", None)
        if url_map is None:
            continue
        try:
            rule, args = url_map.bind("pyd").match(path_info, method, return_rule=True)
        except (HTTPException, RequestRedirect):
            continue
        endpoint = str(rule.endpoint).removesuffix("_branch")
        handler = getattr(type(router) if not isinstance(router, type) else router, endpoint, None)
        declared = getattr(handler, "pyd_role", ("admin", "admin"))
        least = declared[1] if method in ("GET", "HEAD") else declared[0]
        return Route(router, str(rule.rule), dict(args), least)
    return None
