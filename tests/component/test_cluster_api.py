"""Swarm-mode and plugin endpoints answer as a dockerd outside a swarm does."""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.cluster import NOT_A_MANAGER, ClusterRouter
from pyd.api.root import ApiRoot


class ClusterApiTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.http = StubTreq(ApiRoot([ClusterRouter()]))

    def call(self, method: str, path: str) -> tuple[int, Any]:
        resp = self.successResultOf(self.http.request(method, "http://pyd/v1.50" + path))
        raw = self.successResultOf(resp.content())
        return resp.code, json.loads(raw)

    def test_swarm_reads_are_503_not_a_manager(self) -> None:
        """docker node/service/secret/config ls and swarm inspect: 503 with dockerd's text."""
        for path in ("/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs/x"):
            self.assertEqual(self.call("GET", path), (503, {"message": NOT_A_MANAGER}), path)
        self.assertEqual(self.call("POST", "/services/create")[0], 503)

    def test_swarm_init_and_join_unsupported(self) -> None:
        """Creating or joining a swarm is a clear 501."""
        for path in ("/swarm/init", "/swarm/join"):
            code, body = self.call("POST", path)
            self.assertEqual(code, 501)
            self.assertIn("swarm mode", body["message"])
        self.assertEqual(
            self.call("POST", "/swarm/leave"),
            (503, {"message": "This node is not part of a swarm"}),
        )

    def test_plugins(self) -> None:
        """No plugins are listed; a named one is not found; installing one is a 501."""
        self.assertEqual(self.call("GET", "/plugins"), (200, []))
        self.assertEqual(
            self.call("GET", "/plugins/vieux/sshfs:latest/json"),
            (404, {"message": 'plugin "vieux/sshfs:latest" not found'}),
        )
        self.assertEqual(self.call("POST", "/plugins/pull")[0], 501)
