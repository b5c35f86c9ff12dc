"""C{GET /containers/{id}/top} and C{GET /containers/{id}/stats} (layer: api)."""

from __future__ import annotations

import datetime
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd.api.base import make_app, role
from pyd.api.streams import JSONLines
from pyd.api.wire import json_body, qbool, qstr
from pyd.engine.metrics import StatsSample, StatsService, TopService

ZERO_TIME = "0001-01-01T00:00:00Z"
_BLKIO_KEYS = (
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
)


def _time(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    t = datetime.datetime.fromtimestamp(secs, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{t}.{frac:09d}Z"


def _cpu(s: StatsSample | None) -> dict[str, Any]:
    if s is None or s.cgroup is None:
        return {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }
    c = s.cgroup
    usage: dict[str, Any] = {
        "total_usage": c.cpu_total_ns,
        "usage_in_kernelmode": c.cpu_system_ns,
        "usage_in_usermode": c.cpu_user_ns,
    }
    if c.percpu_ns:
        usage["percpu_usage"] = list(c.percpu_ns)
    return {
        "cpu_usage": usage,
        "system_cpu_usage": s.host.system_cpu_ns,
        "online_cpus": s.host.online_cpus,
        "throttling_data": {
            "periods": c.throttling.get("nr_periods", 0),
            "throttled_periods": c.throttling.get("nr_throttled", 0),
            "throttled_time": c.throttling.get("throttled_time", 0),
        },
    }


def stats_json(cur: StatsSample, pre: StatsSample | None) -> dict[str, Any]:
    """dockerd's C{StatsResponse} (Linux) for one sample and the one before it."""
    t = cur.target
    body: dict[str, Any] = {
        "name": "/" + t.name,
        "id": t.id,
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": {k: None for k in _BLKIO_KEYS},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu(None),
        "precpu_stats": _cpu(None),
        "memory_stats": {},
    }
    c = cur.cgroup
    if c is None:
        return body
    body["read"] = _time(cur.host.read_ns)
    if pre is not None and pre.cgroup is not None:
        body["preread"] = _time(pre.host.read_ns)
        body["precpu_stats"] = _cpu(pre)
    body["cpu_stats"] = _cpu(cur)
    body["pids_stats"] = {"current": c.pids_current}
    if 0 < c.pids_limit < (1 << 62):
        body["pids_stats"]["limit"] = c.pids_limit
    blk = [dict(e) for e in c.blkio]
    body["blkio_stats"]["io_service_bytes_recursive"] = blk
    body["memory_stats"] = {
        "usage": c.memory_usage,
        "max_usage": c.memory_max_usage,
        "stats": dict(c.memory_stats),
        "limit": c.memory_limit if 0 < c.memory_limit < (1 << 62) else _mem_total(),
    }
    if cur.host.networks:
        body["networks"] = cur.host.networks
    return body


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # no /proc/meminfo: reported as 0
        pass
    return 0


class MetricsRouter:
    """top and stats."""

    app = make_app()
    prefixes = ("containers",)

    def __init__(self, top: TopService, stats: StatsService, reactor: IReactorTime) -> None:
        self._top = top
        self._stats = stats
        self._reactor = reactor

    def resource(self) -> IResource:
        """The Klein resource."""
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    @app.route("/containers/<ref>/top", methods=["GET"])
    @role("viewer")
    async def top(self, request: IRequest, ref: str) -> bytes:
        """C{{Titles, Processes}} from the host's C{ps}."""
        result = await self._top.top(ref, qstr(request, "ps_args") or "")
        return json_body(
            request,
            {"Titles": list(result.titles), "Processes": [list(p) for p in result.processes]},
        )

    @app.route("/containers/<ref>/stats", methods=["GET"])
    @role("viewer")
    async def stats(self, request: Any, ref: str) -> bytes | None:
        """One sample (C{stream=0}, two reads 0.5 s apart unless C{one-shot}) or one per second."""
        stream = qbool(request, "stream", True)
        one_shot = qbool(request, "one-shot")
        first = await self._stats.sample(ref)
        if not stream:
            pre: StatsSample | None = None
            cur = first
            if not one_shot and first.cgroup is not None:
                await deferLater(self._reactor, 0.5, lambda: None)
                pre, cur = first, await self._stats.sample(ref)
            return json_body(request, stats_json(cur, pre))
        out = JSONLines(request)
        prev: StatsSample | None = None
        cur = first
        while not out.closed:
            out.write(stats_json(cur, prev))
            if cur.cgroup is None:
                break
            await deferLater(self._reactor, 1.0, lambda: None)
            # a client that does not read gets no new samples until it does
            await out.ready()
            if out.closed:
                break
            prev, cur = cur, await self._stats.sample(ref)
        out.finish()
        return None
