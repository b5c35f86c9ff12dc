"""werkzeug's URL builders compiled on first use (layer: api, where werkzeug's routing is).

werkzeug compiles two URL builders for every route Klein adds (Python source it generates,
then C{compile}s), for C{url_for}; the API never builds a URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def lazy_url_builders() -> None:
    """Compile each URL builder when first called (idempotent): ~30 ms of start-up and the
    code of ~160 functions.

    Why here: Klein adds werkzeug C{Rule}s as the routers are built; the patch must be in place
    before (L{pyd.tap.lean_imports})."""
    from werkzeug.routing.rules import Rule

    eager = Rule._compile_builder
    if getattr(eager, "pyd_lazy", False):
        return

    def compile_builder(rule: Rule, append_unknown: bool = True) -> Callable[..., Any]:
        built: list[Callable[..., Any]] = []

        def build(_bound: Rule, *args: Any, **kwargs: Any) -> Any:
            # bound by Rule.compile as the rule's method; compiled by werkzeug on first use
            if not built:
                built.append(eager(rule, append_unknown).__get__(rule, None))
            return built[0](*args, **kwargs)

        return build

    compile_builder.pyd_lazy = True  # type: ignore[attr-defined]  # marks the patch as applied
    Rule._compile_builder = compile_builder  # type: ignore[method-assign,assignment]  # werkzeug's own method, made lazy
