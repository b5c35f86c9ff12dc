"""Daemon-wide facts: version, info, disk usage (layer: engine).

Areas contribute their counts and disk usage through L{SystemContributor}; the system service only
adds them up, so it never imports another area's service.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, gatherResults

from pyd.core.seams import Blocking
from pyd.drivers.runtime.oci import RuntimeSet
from pyd.engine.hostinfo import (
    HostFeatures,
    LiveFacts,
    mask_credentials,
    proxy_setting,
    read_features,
    read_live,
    warnings,
)


class SystemContributor(Protocol):
    """An area that reports counts for C{/info} and usage for C{/system/df}."""

    def info_counts(self) -> Deferred[dict[str, Any]]:
        """E.g. C{{"Containers": 3, "ContainersRunning": 1}} or C{{"Images": 4}}."""
        ...

    def disk_usage(self) -> Deferred[dict[str, Any]]:
        """A fragment of the df record, e.g. C{{"images": [...], "layers_size": N}}."""
        ...


@attrs.frozen
class HostFacts:
    """What the host is, read once at start."""

    kernel: str
    os_name: str
    arch: str
    ncpu: int
    mem_total: int
    cgroup_version: str
    hostname: str
    features: HostFeatures = attrs.field(factory=HostFeatures)

    @classmethod
    def read(cls, data_root: str = "/var/lib/pyd", init_path: str = "") -> HostFacts:
        """Read /proc and /etc (blocking; call before the reactor runs or in a thread)."""
        mem = 0
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemTotal:"):
                        mem = int(line.split()[1]) * 1024
                        break
        except OSError:  # no /proc/meminfo: MemTotal stays 0
            pass
        os_name = "Linux"
        try:
            with open("/etc/os-release") as f:
                for line in f:
                    if line.startswith("PRETTY_NAME="):
                        os_name = line.split("=", 1)[1].strip().strip('"')
        except OSError:  # no os-release: the default OS name stays
            pass
        cg = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
        return cls(
            kernel=platform.release(),
            os_name=os_name,
            arch=platform.machine(),
            ncpu=os.cpu_count() or 1,
            mem_total=mem,
            cgroup_version=cg,
            hostname=platform.node(),
            features=read_features(data_root, init_path),
        )


@attrs.frozen
class SystemInfo:
    """Everything C{/info} reports, before wire shaping."""

    daemon_id: str
    name: str
    host: HostFacts
    data_root: str
    counts: dict[str, Any]
    labels: tuple[str, ...]
    insecure_registries: tuple[str, ...]
    registry_mirrors: tuple[str, ...]
    debug: bool
    runtimes: dict[str, tuple[str, tuple[str, ...]]]  # name -> (path, runtimeArgs)
    default_runtime: str
    security_options: tuple[str, ...]
    warnings: tuple[str, ...]
    live: LiveFacts = attrs.field(factory=lambda: LiveFacts(False, 0, 0))
    experimental: bool = False
    logging_driver: str = "json-file"
    live_restore: bool = True
    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""
    # name -> dockerd's Runtimes[name].status (API 1.44+): the runtime's OCI features
    runtime_status: dict[str, dict[str, str]] = attrs.field(factory=dict)


class SystemService:
    """Answers version/info/df by asking each contributing area."""

    def __init__(
        self,
        daemon_id: str,
        host: HostFacts,
        config: Any,
        contributors: Sequence[SystemContributor] = (),
        blocking: Blocking | None = None,
        runtimes: RuntimeSet | None = None,
        security_options: Sequence[str] | None = None,
    ) -> None:
        """Answers for the host and configuration given.

        @param security_options: C{SecurityOptions} as info lists them (None: the built-in
            seccomp profile, and a private cgroup namespace on cgroup v2).
        """
        self.daemon_id = daemon_id
        self.host = host
        self.config = config
        self._contributors: list[SystemContributor] = list(contributors)
        self._blocking = blocking
        # name -> (path as configured, runtimeArgs), as docker info lists them
        self.runtimes: dict[str, tuple[str, tuple[str, ...]]] = (
            dict(runtimes.shown) if runtimes is not None else {}
        )
        self.default_runtime = runtimes.default if runtimes is not None else "crun"
        # name -> status, as dockerd's runtimeStatus (set at start and on SIGHUP: the
        # runtime's `features` output is read by a process)
        self.runtime_status: dict[str, dict[str, str]] = {}
        # As dockerd lists them: the built-in seccomp profile; a private cgroup namespace on v2.
        self.security_options: list[str] = ["name=seccomp,profile=builtin"]
        if host.cgroup_version == "2":
            self.security_options.append("name=cgroupns")
        if security_options is not None:
            self.security_options = list(security_options)

    def _seccomp_warning(self) -> tuple[str, ...]:
        if any(
            o.startswith("name=seccomp,") and o != "name=seccomp,profile=builtin"
            for o in self.security_options
        ):
            return ("WARNING: daemon is not using the default seccomp profile",)
        return ()

    def add_contributor(self, contributor: SystemContributor) -> None:
        """Include another area in info counts and df."""
        self._contributors.append(contributor)

    async def info(self) -> SystemInfo:
        """Collect the counts of every area."""
        counts: dict[str, Any] = {
            "Containers": 0,
            "ContainersRunning": 0,
            "ContainersPaused": 0,
            "ContainersStopped": 0,
            "Images": 0,
        }
        parts = await gatherResults(
            [c.info_counts() for c in self._contributors], consumeErrors=True
        )
        for p in parts:
            counts.update(p)
        live = await self._blocking.run(read_live) if self._blocking else read_live()
        cfg = self.config
        return SystemInfo(
            daemon_id=self.daemon_id,
            name=self.host.hostname,
            host=self.host,
            data_root=cfg.data_root,
            counts=counts,
            labels=tuple(cfg.labels),
            insecure_registries=tuple(cfg.insecure_registries),
            registry_mirrors=tuple(cfg.registry_mirrors),
            debug=cfg.effective_log_level() == "debug",
            runtimes=dict(self.runtimes),
            default_runtime=self.default_runtime,
            runtime_status=dict(self.runtime_status),
            security_options=tuple(self.security_options),
            warnings=tuple(warnings(self.host.features, live, self._tcp_hosts()))
            + self._seccomp_warning(),
            live=live,
            experimental=bool(cfg.experimental),
            logging_driver=cfg.log_driver,
            live_restore=bool(cfg.live_restore),
            http_proxy=mask_credentials(proxy_setting(cfg.http_proxy, "HTTP_PROXY", "http_proxy")),
            https_proxy=mask_credentials(
                proxy_setting(cfg.https_proxy, "HTTPS_PROXY", "https_proxy")
            ),
            no_proxy=proxy_setting(cfg.no_proxy, "NO_PROXY", "no_proxy"),
        )

    def _tcp_hosts(self) -> list[tuple[str, bool, bool]]:
        out = []
        for h in self.config.default_hosts():
            if h.startswith("tcp://"):
                tls = bool(self.config.tls or self.config.tlsverify)
                out.append((h[len("tcp://") :], tls, bool(self.config.tlsverify)))
        return out

    async def disk_usage(self) -> dict[str, Any]:
        """Merge every area's df fragment (keys: layers_size, images, containers, volumes)."""
        out: dict[str, Any] = {
            "layers_size": 0,
            "images": [],
            "containers": [],
            "volumes": [],
            "build_cache": [],
        }
        parts = await gatherResults(
            [c.disk_usage() for c in self._contributors], consumeErrors=True
        )
        for p in parts:
            for k, v in p.items():
                if isinstance(v, list):
                    out.setdefault(k, []).extend(v)
                elif isinstance(v, int):
                    out[k] = out.get(k, 0) + v
                else:
                    out[k] = v
        return out
