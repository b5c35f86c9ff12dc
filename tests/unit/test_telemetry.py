"""Metrics (pyd.core.telemetry) and the /metrics resource."""

from __future__ import annotations

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from pyd.api.prometheus import MetricsRoot
from pyd.core.telemetry import Telemetry, route_of


class RouteTests(SynchronousTestCase):
    """Paths become low-cardinality route templates."""

    def test_routes(self) -> None:
        """Ids and names are folded; versions stripped; unknown prefixes are 'other'."""
        cases = {
            "/_ping": "/_ping",
            "/v1.50/containers/json": "/containers/json",
            "/v1.45/containers/abc123/start": "/containers/{id}/start",
            "/containers/abc123": "/containers/{id}",
            "/containers/create?name=x": "/containers/create",
            "/images/library/busybox:latest/json": "/images/{id}/json",
            "/system/df": "/system/df",
            "/exec/e1/start": "/exec/{id}/start",
            "/whatever/x": "other",
        }
        for path, route in cases.items():
            self.assertEqual(route_of(path), route, path)


class TelemetryTests(SynchronousTestCase):
    """Recording and exposition."""

    def test_requests_gauges_and_exposition(self) -> None:
        """Requests count by route and status; gauges are read at scrape; /metrics renders them."""
        t = Telemetry()
        t.observe_request("/v1.50/containers/abc/start", "POST", 204, 0.02)
        t.observe_request("/containers/def/start", "POST", 204, 0.03)
        t.observe_container_start(0.05)
        t.add_pull_bytes(1000)
        t.set_container_state_source(lambda: {"running": 2, "exited": 1})
        subs = [3]
        t.set_gauge_source("pyd_event_subscribers", "subs", lambda: subs[0])
        labels = {"route": "/containers/{id}/start", "method": "POST", "status": "204"}
        self.assertEqual(t.value("pyd_api_requests_total", labels), 2.0)
        self.assertEqual(t.value("pyd_image_pull_bytes_total"), 1000.0)
        self.assertEqual(t.value("pyd_containers", {"state": "running"}), 2.0)
        subs[0] = 5
        self.assertEqual(t.value("pyd_event_subscribers"), 5.0)
        treq = StubTreq(MetricsRoot(t))
        response = self.successResultOf(treq.get("http://x/metrics"))
        self.assertEqual(response.code, 200)
        text = self.successResultOf(response.text())
        self.assertIn(
            'pyd_api_request_duration_seconds_bucket{le="0.025",method="POST",route="/containers/{id}/start"} 1.0',
            text,
        )
        self.assertIn("pyd_container_start_duration_seconds_count 1.0", text)
        self.assertIn('pyd_containers{state="exited"} 1.0', text)
        self.assertEqual(self.successResultOf(treq.get("http://x/other")).code, 404)


class DockerdNamesTests(SynchronousTestCase):
    """dockerd's metric names, so dashboards made for dockerd keep working."""

    def test_dockerd_names(self) -> None:
        """Container actions, container states, events, subscribers and engine info."""
        t = Telemetry()
        t.set_container_state_source(lambda: {"running": 2, "exited": 3, "created": 1})
        t.observe_container_start(0.25)
        t.count_event()
        t.count_event()
        t.set_gauge_source("engine_daemon_events_subscribers_total", "subs", lambda: 4)
        t.set_engine_info({"version": "28.2.2", "os_type": "linux"}, 8, 1 << 30)
        self.assertEqual(
            t.value("engine_daemon_container_actions_seconds_count", {"action": "start"}), 1
        )
        for state, n in (("running", 2), ("paused", 0), ("stopped", 4)):
            self.assertEqual(
                t.value("engine_daemon_container_states_containers", {"state": state}), n
            )
        self.assertEqual(t.value("engine_daemon_events_total"), 2)
        self.assertEqual(t.value("engine_daemon_events_subscribers_total"), 4)
        self.assertEqual(
            t.value("engine_daemon_engine_info", {"version": "28.2.2", "os_type": "linux"}), 1
        )
        self.assertEqual(t.value("engine_daemon_engine_cpus_cpus"), 8)
        self.assertEqual(t.value("engine_daemon_engine_memory_bytes"), 1 << 30)


class DockerdActionTests(SynchronousTestCase):
    """dockerd 20.10's other engine_daemon_* families: health checks, network and image actions."""

    def test_health_checks(self) -> None:
        """Both counters exist at 0 (as dockerd's); a probe that could not run counts failed."""
        t = Telemetry()
        self.assertEqual(t.value("engine_daemon_health_checks_total"), 0)
        self.assertEqual(t.value("engine_daemon_health_checks_failed_total"), 0)
        t.count_health_check(True)
        t.count_health_check(True)
        t.count_health_check(False)
        self.assertEqual(t.value("engine_daemon_health_checks_total"), 3)
        self.assertEqual(t.value("engine_daemon_health_checks_failed_total"), 1)

    def test_builder_families(self) -> None:
        """dockerd's builder_builds_triggered_total and builder_builds_failed_total{reason}."""
        t = Telemetry()
        self.assertEqual(t.value("builder_builds_triggered_total"), 0)
        self.assertEqual(t.value("builder_builds_failed_total", {"reason": "build_canceled"}), 0)
        t.count_build(None)
        t.count_build(None)
        t.count_build("build_canceled")
        self.assertEqual(t.value("builder_builds_triggered_total"), 2)
        self.assertEqual(t.value("builder_builds_failed_total", {"reason": "build_canceled"}), 1)

    def test_network_and_image_actions(self) -> None:
        """Successful API requests are timed under dockerd's action labels; failures, prunes,
        inspections, tags and other routes are not."""
        t = Telemetry()
        for path, method, status in (
            ("/v1.47/networks/create", "POST", 201),
            ("/networks/n1/connect", "POST", 200),
            ("/networks/n1/disconnect", "POST", 200),
            ("/networks/n1", "DELETE", 204),
            ("/networks/n2", "DELETE", 404),
            ("/networks/prune", "POST", 200),
            ("/networks/n1", "GET", 200),
            ("/v1.47/images/library/busybox:1", "DELETE", 200),
            ("/images/ghcr.io/a/b/tag", "POST", 201),
            ("/images/localhost:5000/x/push", "POST", 200),
            ("/images/ghcr.io/a/b/history", "GET", 200),
            ("/images/create", "POST", 200),
            ("/images/x/json", "GET", 200),
            ("/containers/c/start", "POST", 204),
        ):
            t.observe_action(path, method, status, 0.25)

        def count(family: str, action: str) -> float | None:
            return t.value(f"engine_daemon_{family}_actions_seconds_count", {"action": action})

        for action in ("create", "connect", "disconnect", "delete"):
            self.assertEqual(count("network", action), 1, action)
        for action in ("push", "history"):
            self.assertEqual(count("image", action), 1, action)
        self.assertIsNone(count("image", "delete"))  # timed by the engine when it removed one
        # neither dockerd 20.10 nor 28 times tag or import (checked on a dockerd 20.10's
        # /metrics); a pull is timed by the engine
        self.assertIsNone(count("image", "tag"))
        self.assertIsNone(count("image", "create"))
        t.observe_image_action("pull", 1.5)
        t.observe_image_action("delete", 0.5)
        self.assertEqual((count("image", "pull"), count("image", "delete")), (1, 1))
        self.assertIsNone(count("network", "prune"))
        self.assertIsNone(count("image", "json"))
        self.assertEqual(
            t.value("engine_daemon_network_actions_seconds_sum", {"action": "delete"}), 0.25
        )
