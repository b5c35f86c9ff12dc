"""C{/version}, C{/info}, C{/system/df}, C{/events} (layer: api)."""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from pyd import __version__
from pyd.api.base import api_version, lean, make_app, role
from pyd.api.root import ENGINE_VERSION, MAX_API_STR, MIN_API_STR
from pyd.api.streams import JSONLines
from pyd.api.timeparse import parse_time_nano
from pyd.api.visibility import redact_event, visibility
from pyd.api.wire import json_body, parse_filters, qlist, qstr
from pyd.core.errors import InvalidParameter
from pyd.core.records import Event
from pyd.core.seams import Clock
from pyd.engine.components import Components, ComponentVersions
from pyd.engine.events import EventFilter, EventService
from pyd.engine.spec.rules import LOG_DRIVERS as LOG_PLUGINS
from pyd.engine.system import SystemService

log = Logger()

# moby api/types DiskUsageObject values
_DF_TYPES = ("container", "image", "volume", "build-cache")
# Stored events replayed per page (each page once the client took the one before).
REPLAY_PAGE = 256
# Bytes of live events held for a subscriber that does not read before it is cut off.
EVENTS_HOLD = 256 << 10


def event_json(ev: Event) -> dict[str, Any]:
    """One event in dockerd's wire shape (with the legacy fields for containers)."""
    out: dict[str, Any] = {}
    if ev.type == "container":
        out["status"] = ev.action
        out["id"] = ev.actor_id
        if "image" in ev.attributes:
            out["from"] = ev.attributes["image"]
    out.update(
        {
            "Type": ev.type,
            "Action": ev.action,
            "Actor": {"ID": ev.actor_id, "Attributes": ev.attributes},
            "scope": ev.scope,
            "time": ev.time_nano // 1_000_000_000,
            "timeNano": ev.time_nano,
        }
    )
    return out


class SystemRouter:
    """Daemon-wide endpoints."""

    app = make_app()
    prefixes = ("version", "info", "system", "events")

    def __init__(
        self,
        system: SystemService,
        events: EventService,
        clock: Clock,
        versions: ComponentVersions | None = None,
    ) -> None:
        """@param versions: the default runtime's and the init's versions (None: not shown)."""
        self._system = system
        self._events = events
        self._clock = clock
        self._versions = versions

    def resource(self) -> IResource:
        """The Klein resource."""
        return self.app.resource()  # type: ignore[no-any-return]  # Klein's resource() is untyped

    async def _components(self) -> Components:
        return await self._versions.components() if self._versions is not None else Components()

    @app.route("/version", methods=["GET"])
    @role("viewer")
    @lean
    async def version(self, request: IRequest) -> bytes:
        """Engine and component versions (the default runtime's and the init's, as dockerd)."""
        h = self._system.host
        details = {
            "ApiVersion": MAX_API_STR,
            "MinAPIVersion": MIN_API_STR,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": _goarch(h.arch),
            "KernelVersion": h.kernel,
            "Experimental": "false",
            "BuildTime": "",
        }
        body = {
            "Platform": {"Name": f"pyd {__version__}"},
            "Components": [
                {"Name": "Engine", "Version": ENGINE_VERSION, "Details": details},
                {"Name": "pyd", "Version": __version__, "Details": {}},
                *(
                    {"Name": c.name, "Version": c.version, "Details": {"GitCommit": c.commit}}
                    for c in (await self._components()).listed
                ),
            ],
            "Version": ENGINE_VERSION,
            "ApiVersion": MAX_API_STR,
            "MinAPIVersion": MIN_API_STR,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": _goarch(h.arch),
            "KernelVersion": h.kernel,
            "BuildTime": "",
        }
        return json_body(request, body)

    @app.route("/info", methods=["GET"])
    @role("viewer")
    @lean
    async def info(self, request: IRequest) -> bytes:
        """Counts and host facts."""
        i = await self._system.info()
        comps = await self._components()
        c = i.counts
        h = i.host
        f = h.features
        body = {
            "ID": i.daemon_id,
            "Name": i.name,
            "Containers": c.get("Containers", 0),
            "ContainersRunning": c.get("ContainersRunning", 0),
            "ContainersPaused": c.get("ContainersPaused", 0),
            "ContainersStopped": c.get("ContainersStopped", 0),
            "Images": c.get("Images", 0),
            "Driver": "overlay2",
            "DriverStatus": [
                ["Backing Filesystem", f.backing_fs],
                ["Supports d_type", "true" if f.d_type else "false"],
                ["Using metacopy", "false"],
                ["Native Overlay Diff", "true"],
                ["userxattr", "false"],
            ],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["bridge", "host", "null"],
                "Authorization": None,
                "Log": list(LOG_PLUGINS),
            },
            "MemoryLimit": f.memory_limit,
            "SwapLimit": f.swap_limit,
            "KernelMemoryTCP": f.kernel_memory_tcp,
            "CpuCfsPeriod": f.cpu_cfs,
            "CpuCfsQuota": f.cpu_cfs,
            "CPUShares": f.cpu_shares,
            "CPUSet": f.cpuset,
            "PidsLimit": f.pids_limit,
            "IPv4Forwarding": i.live.ipv4_forwarding,
            "Debug": i.debug,
            "NFd": i.live.nfd,
            "OomKillDisable": f.oom_kill_disable,
            # Python has no goroutines: the daemon's threads stand in (reactor + pools).
            "NGoroutines": i.live.nthreads,
            "SystemTime": _now_rfc3339(self._clock),
            "LoggingDriver": i.logging_driver,
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": h.cgroup_version,
            "NEventsListener": self._events.subscriber_count,
            "KernelVersion": h.kernel,
            "OperatingSystem": h.os_name,
            "OSVersion": f.os_version,
            "OSType": "linux",
            "Architecture": h.arch,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "InsecureRegistryCIDRs": insecure_cidrs(i.insecure_registries),
                "IndexConfigs": {
                    "docker.io": {
                        "Name": "docker.io",
                        "Mirrors": list(i.registry_mirrors),
                        "Secure": True,
                        "Official": True,
                    },
                    **insecure_indexes(i.insecure_registries),
                },
                "Mirrors": list(i.registry_mirrors),
                "InsecureRegistries": list(i.insecure_registries),
            },
            "NCPU": h.ncpu,
            "MemTotal": h.mem_total,
            "GenericResources": None,
            "DockerRootDir": i.data_root,
            "HttpProxy": i.http_proxy,
            "HttpsProxy": i.https_proxy,
            "NoProxy": i.no_proxy,
            "Labels": list(i.labels),
            "ExperimentalBuild": i.experimental,
            "ServerVersion": ENGINE_VERSION,
            "Runtimes": {
                k: {
                    "path": path,
                    **({"runtimeArgs": list(args)} if args else {}),
                    # dockerd 28 (API 1.44+): the runtime's OCI features, when it tells them
                    **(
                        {"status": i.runtime_status[k]}
                        if i.runtime_status.get(k) and api_version(request) >= (1, 44)
                        else {}
                    ),
                }
                for k, (path, args) in sorted(i.runtimes.items())
            },
            "DefaultRuntime": i.default_runtime,
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "LiveRestoreEnabled": i.live_restore,
            "Isolation": "",
            "InitBinary": f.init_binary,
            "ContainerdCommit": {"ID": ""},
            # the default runtime's commit and the init's, as dockerd's RuncCommit/InitCommit
            "RuncCommit": {"ID": comps.runtime.commit if comps.runtime else ""},
            "InitCommit": {"ID": comps.init.commit if comps.init else ""},
            "SecurityOptions": list(i.security_options),
            "Warnings": list(i.warnings),
            "CDISpecDirs": [],
        }
        return json_body(request, body)

    @app.route("/system/df", methods=["GET"])
    @role("viewer")
    @lean
    async def df(self, request: IRequest) -> bytes:
        """Disk usage as each area reports it (already in wire shape per item). From API 1.42
        C{type} names the areas wanted (moby 28 getDiskUsage): the others are null."""
        wanted = set(_DF_TYPES)
        types = qlist(request, "type")
        if types and api_version(request) >= (1, 42):
            for t in types:
                if t not in _DF_TYPES:
                    raise InvalidParameter(f"unknown object type: {t}")
            wanted = set(types)
        u = await self._system.disk_usage()
        body = {
            "LayersSize": u.get("layers_size", 0) if "image" in wanted else 0,
            "Images": u.get("images", []) if "image" in wanted else None,
            "Containers": u.get("containers", []) if "container" in wanted else None,
            "Volumes": u.get("volumes", []) if "volume" in wanted else None,
            "BuildCache": u.get("build_cache", []) if "build-cache" in wanted else None,
        }
        return json_body(request, body)

    @app.route("/events", methods=["GET"])
    @role("viewer")
    def events(self, request: Any) -> Deferred[None]:
        """Replay stored events in [since, until], then stream live ones until C{until}."""
        # moby 28 system_routes.go getEvents: decoded only (filters.FromJSON); a key the event
        # filter does not know matches every event (daemon/events/filter.go)
        flt = EventFilter(parse_filters(request))
        now = self._events.now_nano()
        since_s, until_s = qstr(request, "since"), qstr(request, "until")
        since = parse_time_nano(since_s) if since_s else None
        until = parse_time_nano(until_s) if until_s else None
        out = JSONLines(request, hold_limit=EVENTS_HOLD)
        done: Deferred[None] = Deferred()
        last_seen = [0]
        buffered: list[Event] = []
        replaying = [True]

        view = visibility(request)
        # Events go out in order; for a caller who may not see every container, each waits for
        # the one before it to be judged (L{redact_event} may look the container up).
        chain: list[Deferred[Any]] = [succeed(None)]

        def write(ev: Event | None) -> None:
            if ev is not None:
                out.write(event_json(ev))

        def send(ev: Event) -> None:
            if ev.id <= last_seen[0]:
                return
            if until is not None and ev.time_nano > until:
                return
            last_seen[0] = ev.id
            if not flt.matches(ev):
                return
            if view is None:
                out.write(event_json(ev))
                return
            seen = view

            def judge(_: object) -> Deferred[Event | None]:
                return Deferred.fromCoroutine(redact_event(seen, ev))

            d = chain[0].addCallback(judge)
            d.addCallback(write)
            d.addErrback(lambda f: log.failure("event redaction failed", f))
            chain[0] = d

        def live(ev: Event) -> None:
            if replaying[0]:
                buffered.append(ev)
            else:
                send(ev)

        unsubscribe = self._events.subscribe(live)
        timer: list[Any] = []

        def end(_: object = None) -> None:
            unsubscribe()
            for t in timer:
                if t.active():
                    t.cancel()

            def finish(_: object) -> None:
                out.finish()
                if not done.called:
                    done.callback(None)

            chain[0].addBoth(finish)

        request.notifyFinish().addBoth(end)

        async def replay() -> None:
            # Page by page, each once the client took the one before: a reader that does not
            # read holds one page, not the event log.
            after = 0
            while not out.closed:
                page = await self._events.history(since or 0, until, after, REPLAY_PAGE)
                for ev in page:
                    send(ev)
                await chain[0]
                await out.ready()
                if len(page) < REPLAY_PAGE:
                    break
                after = page[-1].id

        def replayed(_: object) -> None:
            if out.closed:
                return
            replaying[0] = False
            for ev in buffered:
                send(ev)
            buffered.clear()
            if until is not None:
                if until <= now:
                    end()
                else:
                    timer.append(self._clock.callLater((until - now) / 1e9, end))

        if since is not None:
            Deferred.fromCoroutine(replay()).addCallbacks(replayed, lambda f: end())
        else:
            replayed([])
        return done


def _goarch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _now_rfc3339(clock: Clock) -> str:
    from pyd.api.timeparse import rfc3339_nano

    return rfc3339_nano(int(clock.seconds() * 1e9))


def insecure_cidrs(registries: tuple[str, ...]) -> list[str]:
    """dockerd's InsecureRegistryCIDRs: the configured CIDRs, then loopback (always insecure)."""
    out = []
    for r in registries:
        try:
            out.append(str(ipaddress.ip_network(r, strict=False)))
        except ValueError:
            continue
    return [*out, "::1/128", "127.0.0.0/8"]


def insecure_indexes(registries: tuple[str, ...]) -> dict[str, Any]:
    """dockerd's IndexConfigs entries for insecure registries named by host (not CIDR)."""
    out: dict[str, Any] = {}
    for r in registries:
        try:
            ipaddress.ip_network(r, strict=False)
            continue
        except ValueError:  # not a CIDR: checked as a host name below
            pass
        name = r.removeprefix("http://").removeprefix("https://").rstrip("/")
        out[name] = {"Name": name, "Mirrors": [], "Secure": False, "Official": False}
    return out
