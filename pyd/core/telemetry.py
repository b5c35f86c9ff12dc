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

The values are plain numbers in dicts; prometheus_client (~1 MB resident with what it imports)
is imported only to render them (L{Telemetry.registry}: the C{--metrics-addr} listener, tests),
so a daemon nobody scrapes never loads it. The exposition is the one prometheus_client's
C{Counter} and C{Histogram} would write (C{_total}, C{_created}, cumulative C{_bucket}s).
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

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


class _Counter:
    """A counter family: a value and a creation time per label tuple."""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        # label values -> [value, created]; an unlabelled counter exists from the start
        self.children: dict[tuple[str, ...], list[float]] = {}
        if not self.labelnames:
            self.child(())

    def child(self, labels: tuple[str, ...]) -> list[float]:
        """The C{[value, created]} cell of C{labels} (made on first use)."""
        cell = self.children.get(labels)
        if cell is None:
            cell = self.children[labels] = [0.0, time.time()]
        return cell

    def inc(self, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        """Add C{amount} to the counter of C{labels}."""
        self.child(labels)[0] += amount

    def family(self, core: Any) -> Iterator[Any]:
        """prometheus_client's families for this counter (C{core}: prometheus_client.core)."""
        fam = core.CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, (value, created) in self.children.items():
            fam.add_metric(list(labels), value, created=created)
        yield fam


class _Histogram:
    """A histogram family: per label tuple, the count in each bucket (not cumulative; the last
    one is +Inf), the sum and the creation time."""

    def __init__(
        self, name: str, doc: str, buckets: Sequence[float], labelnames: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self.children: dict[tuple[str, ...], _HistogramCell] = {}
        if not self.labelnames:
            self.child(())

    def child(self, labels: tuple[str, ...]) -> _HistogramCell:
        """The cell of C{labels} (made on first use)."""
        cell = self.children.get(labels)
        if cell is None:
            cell = self.children[labels] = _HistogramCell(self.bounds)
        return cell

    def family(self, core: Any) -> Iterator[Any]:
        """prometheus_client's families for this histogram."""
        from prometheus_client.utils import floatToGoString

        fam = core.HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, cell in self.children.items():
            running = 0
            buckets = []
            for bound, n in zip((*self.bounds, float("inf")), cell.counts, strict=True):
                running += n
                buckets.append((floatToGoString(bound), float(running)))
            fam.add_metric(list(labels), buckets, cell.sum)
            # prometheus_client's Histogram writes the child's creation time too
            fam.samples.append(
                core.Sample(
                    self.name + "_created",
                    dict(zip(self.labelnames, labels, strict=True)),
                    cell.created,
                )
            )
        yield fam


class _HistogramCell:
    """One label tuple's observations."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        """Count C{value} in its bucket (a bound is inclusive, as Prometheus' C{le})."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Gauges:
    """Gauges read from callbacks at scrape time."""

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, str | None, Callable[[], Any]]] = {}
        # Constant "info" gauges: name -> (doc, labels); the value is 1.
        self.infos: dict[str, tuple[str, dict[str, str]]] = {}

    def family(self, core: Any) -> Iterator[Any]:
        """prometheus_client's gauge families, values read now."""
        for name, (doc, labels) in sorted(self.infos.items()):
            info = core.GaugeMetricFamily(name, doc, labels=list(labels))
            info.add_metric(list(labels.values()), 1.0)
            yield info
        for name, (doc, label, fn) in sorted(self.sources.items()):
            value = fn()
            if label is None:
                yield core.GaugeMetricFamily(name, doc, value=float(value))
            else:
                fam = core.GaugeMetricFamily(name, doc, labels=[label])
                for key, v in sorted(dict(value).items()):
                    fam.add_metric([str(key)], float(v))
                yield fam


class _Collector:
    """Every family of a L{Telemetry}, in the order they were declared (prometheus_client's
    collector protocol: C{collect()})."""

    def __init__(self, families: Sequence[_Counter | _Histogram | _Gauges]) -> None:
        self._families = families

    def collect(self) -> Iterator[Any]:
        from prometheus_client import core

        for family in self._families:
            yield from family.family(core)


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
    if method == "POST" and rest.endswith("/push"):
        return "push"
    if method == "GET" and rest.endswith("/history"):
        return "history"
    # tag and import are not timed by dockerd (20.10 and 28); pull and delete are, by the
    # engine (a delete only when it removed the image)
    return None


# builder_builds_failed_total's reasons (moby builder/dockerfile/metrics.go), each exposed at 0
# before its first failure as dockerd initialises them.
# The builder counts these (L{pyd.engine.builder.builder}); pyd's builder has no occasion for
# the other two.
BUILD_CANCELED = "build_canceled"
BUILD_TARGET_NOT_REACHABLE = "build_target_not_reachable_error"
BUILD_DOCKERFILE_EMPTY = "dockerfile_empty_error"
BUILD_DOCKERFILE_SYNTAX = "dockerfile_syntax_error"
BUILD_COMMANDS_FAILED = "error_processing_commands_error"
BUILD_UNKNOWN_INSTRUCTION = "unknown_instruction_error"
BUILD_FAILURE_REASONS = (
    BUILD_CANCELED,
    BUILD_TARGET_NOT_REACHABLE,
    "command_not_supported_error",
    BUILD_DOCKERFILE_EMPTY,
    BUILD_DOCKERFILE_SYNTAX,
    BUILD_COMMANDS_FAILED,
    "missing_onbuild_arguments_error",
    BUILD_UNKNOWN_INSTRUCTION,
)


class Telemetry:
    """The daemon's metrics (no global state)."""

    def __init__(self) -> None:
        self.requests = _Counter(
            "pyd_api_requests",
            "Engine API requests by route, method and status",
            ["route", "method", "status"],
        )
        self.latency = _Histogram(
            "pyd_api_request_duration_seconds",
            "Engine API request latency by route and method",
            LATENCY_BUCKETS,
            ["route", "method"],
        )
        self.container_start = _Histogram(
            "pyd_container_start_duration_seconds",
            "Time from a start request until the container runs",
            START_BUCKETS,
        )
        self.pull_bytes = _Counter("pyd_image_pull_bytes", "Bytes downloaded by image pulls")
        self.reloads = _Counter("pyd_config_reloads", "SIGHUP reloads by outcome", ["outcome"])
        # dockerd's names too (moby internal/metrics), so existing dashboards keep working.
        self.dockerd_container_actions = _Histogram(
            "engine_daemon_container_actions_seconds",
            "The number of seconds it takes to process each container action",
            START_BUCKETS,
            ["action"],
        )
        self.dockerd_events = _Counter("engine_daemon_events", "The number of events logged")
        self.dockerd_health_checks = _Counter(
            "engine_daemon_health_checks", "The total number of health checks"
        )
        self.dockerd_health_checks_failed = _Counter(
            "engine_daemon_health_checks_failed", "The total number of failed health checks"
        )
        self.dockerd_network_actions = _Histogram(
            "engine_daemon_network_actions_seconds",
            "The number of seconds it takes to process each network action",
            START_BUCKETS,
            ["action"],
        )
        self.dockerd_image_actions = _Histogram(
            "engine_daemon_image_actions_seconds",
            "The number of seconds it takes to process each image action",
            START_BUCKETS,
            ["action"],
        )
        self.dockerd_builds_triggered = _Counter(
            "builder_builds_triggered", "Number of triggered image builds"
        )
        self.dockerd_builds_failed = _Counter(
            "builder_builds_failed", "Number of failed image builds", ["reason"]
        )
        for reason in BUILD_FAILURE_REASONS:  # shown at 0 from the start, as dockerd's
            self.dockerd_builds_failed.child((reason,))
        self._gauges = _Gauges()
        self._families: tuple[_Counter | _Histogram | _Gauges, ...] = (
            self.requests,
            self.latency,
            self.container_start,
            self.pull_bytes,
            self.reloads,
            self.dockerd_container_actions,
            self.dockerd_events,
            self.dockerd_health_checks,
            self.dockerd_health_checks_failed,
            self.dockerd_network_actions,
            self.dockerd_image_actions,
            self.dockerd_builds_triggered,
            self.dockerd_builds_failed,
            self._gauges,
        )
        self._children: dict[tuple[str, str, int], tuple[list[float], _HistogramCell]] = {}
        self._registry: Any = None

    @property
    def registry(self) -> Any:
        """A prometheus_client C{CollectorRegistry} over these metrics (imports
        prometheus_client the first time: the exposition and tests only)."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            registry = CollectorRegistry(auto_describe=True)
            registry.register(_Collector(self._families))  # type: ignore[arg-type]  # duck-typed collector
            self._registry = registry
        return self._registry

    def observe_request(self, path: str, method: str, status: int, seconds: float) -> None:
        """Count one API request and its latency."""
        key = (path, method, status)
        children = self._children.get(key)
        if children is None:
            if len(self._children) > 4096:  # paths carry ids: keep the cache bounded
                self._children.clear()
            route = route_of(path)
            children = (
                self.requests.child((route, method, str(status))),
                self.latency.child((route, method)),
            )
            self._children[key] = children
        children[0][0] += 1
        children[1].observe(seconds)

    def observe_container_start(self, seconds: float) -> None:
        """Record how long a container took to start."""
        self.container_start.child(()).observe(seconds)
        self.dockerd_container_actions.child(("start",)).observe(seconds)

    def count_health_check(self, ran: bool) -> None:
        """One health probe; C{ran} False when it could not run (dockerd counts those failed,
        not the probes that report unhealthy)."""
        self.dockerd_health_checks.inc()
        if not ran:
            self.dockerd_health_checks_failed.inc()

    def count_build(self, failed_reason: str | None) -> None:
        """A build started (None) or failed for moby's C{reason} (dockerd's builder_* names)."""
        if failed_reason is None:
            self.dockerd_builds_triggered.inc()
        else:
            self.dockerd_builds_failed.inc((failed_reason,))

    def count_reload(self, outcome: str) -> None:
        """One SIGHUP reload, C{applied} or C{refused}."""
        self.reloads.inc((outcome,))

    def observe_action(self, path: str, method: str, status: int, seconds: float) -> None:
        """dockerd's network and image action histograms, from a successful API request (the
        actions dockerd times: network create/delete/connect/disconnect, image
        push/history; a pull and a delete are timed by the engine, L{observe_image_action})."""
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
        hist.child((action,)).observe(seconds)

    def observe_image_action(self, action: str, seconds: float) -> None:
        """One image action the engine timed (C{pull}, whether it succeeded or not, as dockerd's
        ImageService.PullImage records it; C{delete} when the image was removed)."""
        self.dockerd_image_actions.child((action,)).observe(seconds)

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
        self.pull_bytes.inc((), n)

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
        """A sample's current value (for tests and the bench; imports prometheus_client)."""
        found: float | None = self.registry.get_sample_value(name, dict(labels or {}))
        return found
