"""pyd's Klein routes compile their werkzeug URL builders on first use (pyd/api/rules.py) and
build the same URLs as werkzeug's own rules."""

from __future__ import annotations

import unittest

from werkzeug.routing import Map, Rule

from pyd.api.base import make_app
from pyd.api.rules import DeferredBuilderRule, _DeferredBuilder

RULES = (
    ("/things/<name>/json", {"name": "a b"}),
    ("/v<int:n>/x", {"n": 3, "extra": "q"}),
    ("/plain", {}),
)


class DeferredBuilderTests(unittest.TestCase):
    def test_klein_routes_defer_their_builders(self) -> None:
        """A route of a pyd app is a DeferredBuilderRule, whose builders are stand-ins until a
        URL is built; matching does not compile them."""
        app = make_app()

        @app.route("/things/<name>", methods=["GET"])
        def thing(request: object, name: str) -> str:
            return name

        rules = list(app.url_map.iter_rules())
        self.assertTrue(rules)
        self.assertTrue(all(type(r) is DeferredBuilderRule for r in rules))
        adapter = app.url_map.bind("pyd")
        endpoint, values = adapter.match("/things/x", method="GET")
        self.assertEqual(values, {"name": "x"})
        rule = next(r for r in rules if r.endpoint == endpoint)
        self.assertIsInstance(rule._build, _DeferredBuilder)
        self.assertEqual(adapter.build(endpoint, {"name": "y z"}), "/things/y%20z")
        self.assertNotIsInstance(rule._build_unknown, _DeferredBuilder)  # compiled, kept

    def test_built_urls_match_werkzeug(self) -> None:
        """With and without unknown values (query arguments), with converters and defaults,
        the URLs built are werkzeug's."""
        for path, values in RULES:
            own = Map([Rule(path, endpoint="e")]).bind("h")
            deferred = Map([DeferredBuilderRule(path, endpoint="e")]).bind("h")
            for append_unknown in (True, False):
                self.assertEqual(
                    deferred.build("e", values, append_unknown=append_unknown),
                    own.build("e", values, append_unknown=append_unknown),
                    (path, append_unknown),
                )
        with_default = [DeferredBuilderRule("/p/<int:page>", endpoint="p", defaults={"page": 1})]
        own_default = [Rule("/p/<int:page>", endpoint="p", defaults={"page": 1})]
        self.assertEqual(
            Map(with_default).bind("h").build("p", {}), Map(own_default).bind("h").build("p", {})
        )
