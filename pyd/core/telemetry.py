"""Prometheus metrics of the daemon: one L{Telemetry} object, handed to whoever records (layer: core).

The composition root makes one L{Telemetry} and passes it to the services that record. Engine
code calls the small methods here (never prometheus_client directly), so tests can hand in a fresh
object and read values back with L{Telemetry.value}:

  - L{Telemetry.observe_request}: the API root calls it for every request (route, method, status,
    seconds);
  - L{Telemetry.observe_container_start}: seconds from C{POST /containers/{id}/start} to running;
  - L{Telemetry.add_pull_bytes}: bytes downloaded by image pulls;
  - L{Telemetry.set_container_state_source}: a function returning C{{state: count}}, read at
    scrape time (no bookkeeping in the hot path);
  - L{Telemetry.set_gauge_source}: any other gauge read at scrape time (event subscribers...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
START_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# First path segments of the Engine API; anything else is counted as "other".
_PREFIXES = frozenset(
    [
        "_ping",
        "containers",
        "images",
        "networks",
        "volumes",
        "exec",
        "build",
        "events",
        "version",
        "info",
        "system",
        "auth",
        "distribution",
        "plugins",
        "session",
        "swarm",
        "nodes",
        "services",
        "tasks",
        "secrets",
        "configs",
        "commit",
        "grpc",
    ]
)
# Collection-level second segments (kept as they are, not an id).
_COLLECTION = frozenset(
    [
        "json",
        "create",
        "prune",
        "load",
        "search",
        "get",
        "push",
        "import",
        "list",
        "df",
        "events",
        "data",
    ]
)


def route_of(path: str) -> str:
    """A low-cardinality route template: C{/containers/abc/start} -> C{/containers/{id}/start}."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if parts and parts[0].startswith("v") and parts[0][1:2].isdigit():
        parts = parts[1:]
    if not parts:
        return "/"
    first = parts[0]
    if first not in _PREFIXES:
        return "other"
    if len(parts) == 1:
        return "/" + first
    if len(parts) == 2 and parts[1] in _COLLECTION:
        return f"/{first}/{parts[1]}"
    if first == "system":
        return "/system/" + parts[1]
    if len(parts) == 2:
        return f"/{first}/{{id}}"
    last = parts[-1]
    if last.isidentifier() or last in ("json",):
        return f"/{first}/{{id}}/{last}"
    return f"/{first}/{{id}}"


class _Gauges:
    """A collector that reads gauge values from callbacks at scrape time."""

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, str | None, Callable[[], Any]]] = {}
        # Constant "info" gauges: name -> (doc, labels); the value is 1.
        self.infos: dict[str, tuple[str, dict[str, str]]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (doc, labels) in sorted(self.infos.items()):
            info = GaugeMetricFamily(name, doc, labels=list(labels))
            info.add_metric(list(labels.values()), 1.0)
            yield info
        for name, (doc, label, fn) in sorted(self.sources.items()):
            value = fn()
            if label is None:
                yield GaugeMetricFamily(name, doc, value=float(value))
            else:
                fam = GaugeMetricFamily(name, doc, labels=[label])
                for key, v in sorted(dict(value).items()):
                    fam.add_metric([str(key)], float(v))
                yield fam


# /v1.47/networks/create, /networks/ID/connect, /images/NAME/tag ... (an image name may hold "/")
_ACTION = re.compile(r"^(?:/v[0-9.]+)?/(networks|images)/(.+)$")


def _action_of(kind: str, method: str, rest: str) -> str | None:
    """dockerd's action label of an API request on C{/networks/REST} or C{/images/REST}."""
    if kind == "networks":
        if method == "DELETE" and "/" not in rest:
            return "delete"
        if method == "POST" and rest == "create":
            return "create"
        if method == "POST" and rest.endswith(("/connect", "/disconnect")):
            return rest.rsplit("/", 1)[1]
        return None
    if method == "DELETE":
        return "delete"
    if method == "POST" and rest.endswith("/push"):
        return "push"
    if method == "GET" and rest.endswith("/history"):
        return "history"
    return None  # tag and import are not timed by dockerd (20.10 and 28); pull is, in the engine


class Telemetry:
    """The daemon's metrics, in their own registry (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pyd_api_requests",
            "Engine API requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pyd_api_request_duration_seconds",
            "Engine API request latency by route and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.container_start = Histogram(
            "pyd_container_start_duration_seconds",
            "Time from a start request until the container runs",
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self.pull_bytes = Counter(
            "pyd_image_pull_bytes", "Bytes downloaded by image pulls", registry=self.registry
        )
        self.reloads = Counter(
            "pyd_config_reloads",
            "SIGHUP reloads by outcome",
            ["outcome"],
            registry=self.registry,
        )
        # dockerd's names too (moby internal/metrics), so existing dashboards keep working.
        self.dockerd_container_actions = Histogram(
            "engine_daemon_container_actions_seconds",
            "The number of seconds it takes to process each container action",
            ["action"],
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self.dockerd_events = Counter(
            "engine_daemon_events", "The number of events logged", registry=self.registry
        )
        self.dockerd_health_checks = Counter(
            "engine_daemon_health_checks",
            "The total number of health checks",
            registry=self.registry,
        )
        self.dockerd_health_checks_failed = Counter(
            "engine_daemon_health_checks_failed",
            "The total number of failed health checks",
            registry=self.registry,
        )
        self.dockerd_network_actions = Histogram(
            "engine_daemon_network_actions_seconds",
            "The number of seconds it takes to process each network action",
            ["action"],
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self.dockerd_image_actions = Histogram(
            "engine_daemon_image_actions_seconds",
            "The number of seconds it takes to process each image action",
            ["action"],
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self._gauges = _Gauges()
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.registry.register(self._gauges)  # type: ignore[arg-type]  # duck-typed collector

    def observe_request(self, path: str, method: str, status: int, seconds: float) -> None:
        """Count one API request and its latency."""
        key = (path, method, status)
        children = self._children.get(key)
        if children is None:
            if len(self._children) > 4096:  # paths carry ids: keep the cache bounded
                self._children.clear()
            route = route_of(path)
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_container_start(self, seconds: float) -> None:
        """Record how long a container took to start."""
        self.container_start.observe(seconds)
        self.dockerd_container_actions.labels("start").observe(seconds)

    def count_health_check(self, ran: bool) -> None:
        """One health probe; C{ran} False when it could not run (dockerd counts those failed,
        not the probes that report unhealthy)."""
        self.dockerd_health_checks.inc()
        if not ran:
            self.dockerd_health_checks_failed.inc()

    def observe_action(self, path: str, method: str, status: int, seconds: float) -> None:
        """dockerd's network and image action histograms, from a successful API request (the
        actions dockerd times: network create/delete/connect/disconnect, image
        delete/push/history; a pull is timed by the engine, L{observe_image_action})."""
        if status >= 300:
            return
        found = _ACTION.match(path)
        if found is None:
            return
        kind = found.group(1)
        action = _action_of(kind, method, found.group(2))
        if action is None:
            return
        hist = self.dockerd_network_actions if kind == "networks" else self.dockerd_image_actions
        hist.labels(action).observe(seconds)

    def observe_image_action(self, action: str, seconds: float) -> None:
        """One image action the engine timed (C{pull}: whether it succeeded or not, as
        dockerd's ImageService.PullImage records it)."""
        self.dockerd_image_actions.labels(action).observe(seconds)

    def count_event(self) -> None:
        """One more event logged (dockerd's engine_daemon_events_total)."""
        self.dockerd_events.inc()

    def set_engine_info(self, labels: Mapping[str, str], cpus: int, memory: int) -> None:
        """dockerd's engine_daemon_engine_info (labels, value 1), _cpus_cpus and _memory_bytes."""
        self._gauges.infos["engine_daemon_engine_info"] = (
            "The information related to the engine and the OS it is running on",
            dict(labels),
        )
        self.set_gauge_source(
            "engine_daemon_engine_cpus_cpus",
            "The number of cpus that the host system of the engine has",
            lambda: cpus,
        )
        self.set_gauge_source(
            "engine_daemon_engine_memory_bytes",
            "The number of bytes of memory that the host system of the engine has",
            lambda: memory,
        )

    def add_pull_bytes(self, n: int) -> None:
        """Add bytes downloaded by a pull."""
        self.pull_bytes.inc(n)

    def set_container_state_source(self, fn: Callable[[], Mapping[str, int]]) -> None:
        """C{pyd_containers{state=...}} is read from C{fn()} at scrape time, and dockerd's
        C{engine_daemon_container_states_containers{state=running|paused|stopped}} from it."""
        self.set_gauge_source("pyd_containers", "Containers by state", fn, label="state")

        def dockerd_states() -> dict[str, int]:
            out = {"running": 0, "paused": 0, "stopped": 0}
            for state, n in fn().items():
                key = state if state in ("running", "paused") else "stopped"
                out[key] += n
            return out

        self.set_gauge_source(
            "engine_daemon_container_states_containers",
            "The count of containers in various states",
            dockerd_states,
            label="state",
        )

    def set_gauge_source(
        self, name: str, doc: str, fn: Callable[[], Any], label: str | None = None
    ) -> None:
        """A gauge read from C{fn()} at scrape time: a number, or C{{label value: number}}."""
        self._gauges.sources[name] = (doc, label, fn)

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """A sample's current value (for tests and the bench)."""
        return self.registry.get_sample_value(name, dict(labels or {}))
