"""werkzeug URL rules whose URL builders are compiled on first use (layer: api).

When a rule is bound to its map, werkzeug compiles two URL builders for it (the functions
C{url_for} and a redirect to a rule's defaults call), each from a generated syntax tree: ~1,000
bytes of code and function per builder, 164 for the daemon's 82 rules, and a few tens of
milliseconds of each start. The daemon never builds a URL from a rule (it matches them), so
L{DeferredBuilderRule}, the rule Klein makes for pyd's routes (L{pyd.api.base}), compiles a
builder the first time it is called, and then behaves as werkzeug's.
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import Rule


class _DeferredBuilder:
    """Stands for one of a rule's builders until it is first called: it compiles the real
    one, puts it where werkzeug keeps it, and calls it."""

    __slots__ = ("_append_unknown", "_rule")

    def __init__(self, rule: Rule, append_unknown: bool) -> None:
        self._rule = rule
        self._append_unknown = append_unknown

    def __get__(self, rule: object, owner: object = None) -> _DeferredBuilder:
        return self  # werkzeug binds what _compile_builder returns to the rule

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        rule = self._rule
        real = Rule._compile_builder(rule, self._append_unknown).__get__(rule, None)
        if self._append_unknown:
            rule._build_unknown = real
        else:
            rule._build = real
        return real(*args, **kwargs)


class DeferredBuilderRule(Rule):
    """A werkzeug rule that compiles its URL builders when they are first called."""

    def _compile_builder(self, append_unknown: bool = True) -> Any:
        return _DeferredBuilder(self, append_unknown)
