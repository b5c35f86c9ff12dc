"""pyd.api.base.RouteTable: the root's one route lookup per request, and the recent verdicts it
keeps (the same route, or the same refusal, as werkzeug's matcher gives; bounded)."""

from __future__ import annotations

import pytest

from pyd.api import base
from pyd.api.base import RouteTable, match_route
from tests.unit.test_authz import router_classes


def _table() -> RouteTable:
    return RouteTable(router_classes())


def test_same_verdict_as_the_matcher_first_and_again() -> None:
    table = _table()
    routers = router_classes()
    for method, path in [
        ("GET", "/volumes/data"),
        ("DELETE", "/volumes/data"),
        ("POST", "/volumes/create"),
        ("GET", "/containers/abc/json"),
        ("POST", "/containers/abc/json"),  # no such route for the method
        ("GET", "/volumes//data"),  # werkzeug redirects: no handler
    ]:
        first = path.strip("/").split("/")[0].encode()
        expected = match_route([r for r in routers if first.decode() in r.prefixes], method, path)
        for _ in range(2):
            got = table.match(first, method, path)
            assert got == expected, (method, path)
    volume = table.match(b"volumes", "GET", "/volumes/data")
    assert volume is not None and volume.args == {"name": "data"}
    assert table.match(b"volumes", "GET", "/volumes/other").args == {"name": "other"}  # type: ignore[union-attr]


def test_recent_verdicts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    table = _table()
    monkeypatch.setattr(base, "RECENT_ROUTES", 4)
    for i in range(10):
        assert table.match(b"volumes", "GET", f"/volumes/v{i}") is not None
        assert len(table._recent) <= 4
    long_path = "/volumes/" + "x" * 300
    route = table.match(b"volumes", "GET", long_path)
    assert route is not None and route.args == {"name": "x" * 300}
    assert all(key[2] != long_path for key in table._recent)  # a long path is not kept
