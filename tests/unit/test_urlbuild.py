"""pyd.api.urlbuild.lazy_url_builders: werkzeug's URL builders are compiled on first use, and build
what the eager ones build."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.routing import Map, Rule
from werkzeug.routing import rules as werkzeug_rules

from pyd.api.urlbuild import lazy_url_builders


def _map() -> Map:
    return Map(
        [
            Rule("/volumes/<string:name>", endpoint="inspect", methods=["GET"]),
            Rule("/containers/<string:ref>/logs", endpoint="logs", methods=["GET"]),
            Rule("/version", endpoint="version"),
        ]
    )


def _builds(m: Map) -> list[str]:
    a = m.bind("pyd")
    return [
        a.build("inspect", {"name": "data"}),
        a.build("inspect", {"name": "a b", "force": "1"}),
        a.build("logs", {"ref": "c1"}, append_unknown=False),
        a.build("version"),
    ]


def test_same_urls_built_once_compiled_on_use(monkeypatch: pytest.MonkeyPatch) -> None:
    eager = _builds(_map())
    eager_compile = werkzeug_rules.Rule._compile_builder
    calls: list[Any] = []

    def counting(rule: Rule, append_unknown: bool = True) -> Any:
        calls.append((rule.rule, append_unknown))
        return eager_compile(rule, append_unknown)

    monkeypatch.setattr(werkzeug_rules.Rule, "_compile_builder", counting)
    lazy_url_builders()
    lazy_url_builders()  # idempotent
    m = _map()
    assert calls == []  # adding the rules compiled no builder
    assert m.bind("pyd").match("/volumes/data", "GET") == ("inspect", {"name": "data"})
    assert calls == []  # nor did matching
    assert _builds(m) == eager
    assert sorted(calls) == sorted(
        {
            ("/volumes/<string:name>", True),
            ("/containers/<string:ref>/logs", False),
            ("/version", True),
        }
    )
    _builds(m)
    assert len(calls) == 3  # each builder compiled once
