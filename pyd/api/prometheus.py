"""The C{--metrics-addr} HTTP resource: Prometheus text format at C{/metrics} (layer: api)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.resource import Resource

from pyd.core.telemetry import Telemetry


class MetricsRoot(Resource):
    """C{GET /metrics} renders the registry; anything else is 404."""

    isLeaf = True

    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__()
        self.telemetry = telemetry

    def render_GET(self, request: Any) -> bytes:
        """The exposition text (cheap: a few hundred samples)."""
        if request.path.rstrip(b"/") != b"/metrics":
            request.setResponseCode(404)
            return b"404 page not found\n"
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        body: bytes = generate_latest(self.telemetry.registry)
        return body
