"""Stand-in network and volume providers used until the full services are wired (layer: engine).

L{BasicNetworkProvider} knows the modes that need no bridge: C{none} and C{host}; C{bridge} (and
every other name) gets a private network namespace with only loopback, like C{none}.
L{BasicVolumeProvider} handles bind mounts (C{Binds}, C{Mounts} of type bind) and tmpfs mounts
(C{Mounts} of type tmpfs, C{HostConfig.Tmpfs}); named and anonymous volumes are refused.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence

from pyd.core.errors import InvalidParameter
from pyd.core.records import MountSpec, NetworkSetup
from pyd.engine.contracts import NetworkProvider, VolumeProvider
from pyd.engine.spec import MountRequest, NetworkRequest


class BasicNetworkProvider:
    """C{none}/C{host} networking (a new empty namespace for anything else)."""

    def canonical_mode(self, network_mode: str) -> str:
        return network_mode

    async def validate(
        self,
        container_id: str,
        network_mode: str,
        network: NetworkRequest,
    ) -> None:
        """Accept every mode; published ports need the bridge, so they are refused."""
        if network_mode.startswith("container:"):
            raise InvalidParameter("network mode container: is not supported yet")

    async def setup(
        self,
        container_id: str,
        name: str,
        hostname: str,
        network_mode: str,
        network: NetworkRequest,
        exposed_ports: Sequence[str],
    ) -> NetworkSetup:
        """None for host (the host namespace); "" (a new namespace) otherwise."""
        netns = None if network_mode == "host" else ""
        return NetworkSetup(
            netns_path=netns,
            endpoints=(),
            ports=(),
            hosts_entries=(),
            dns_servers=(),
            dns_search=(),
            dns_options=(),
        )

    async def plugged(self, container_id: str) -> None:
        """No interface is plugged."""

    async def teardown(self, container_id: str) -> None:
        """Nothing to release."""

    async def allow_links(
        self, container_id: str, children: Sequence[tuple[str, Sequence[str]]]
    ) -> None:
        """No firewall."""

    async def release(self, container_id: str) -> None:
        """Nothing to release."""

    async def release_stale(self, running: Collection[str]) -> None:
        """Nothing is held."""


def _parse_bind(spec: str) -> MountSpec:
    parts = spec.split(":")
    if len(parts) < 2 or len(parts) > 3:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    src, dst = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    if not os.path.isabs(dst):
        raise InvalidParameter(
            f"invalid volume specification: '{spec}': invalid mount config for type \"bind\": invalid mount path: '{dst}' mount path must be absolute"
        )
    if not os.path.isabs(src):
        raise InvalidParameter("named volumes are not available yet in this build of pyd")
    rw = True
    propagation = "rprivate"
    for m in mode.split(",") if mode else []:
        if m == "ro":
            rw = False
        elif m == "rw":
            rw = True
        elif m in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
            propagation = m
        elif m in ("z", "Z", "nocopy", "consistent", "cached", "delegated"):
            pass
        else:
            raise InvalidParameter(f"invalid mode: {m}")
    return MountSpec(
        type="bind", source=src, destination=dst, rw=rw, mode=mode, propagation=propagation
    )


class BasicVolumeProvider:
    """Bind and tmpfs mounts only."""

    async def resolve_mounts(
        self,
        container_id: str,
        mounts: MountRequest,
        image_volumes: Sequence[str],
        volumes_from: Sequence[Sequence[MountSpec]] = (),
    ) -> list[MountSpec]:
        """Parse Binds, Mounts and Tmpfs; image volumes become private tmpfs-free dirs (skipped)."""
        out: list[MountSpec] = []
        for b in mounts.binds:
            out.append(_parse_bind(b))
        for m in mounts.mounts:
            typ = m.type
            target = m.target
            if not target or not os.path.isabs(target):
                raise InvalidParameter("invalid mount config: Target must be an absolute path")
            if typ == "bind":
                src = m.source
                if not os.path.exists(src):
                    raise InvalidParameter(
                        f'invalid mount config for type "bind": bind source path does not exist: {src}'
                    )
                prop = (m.bind.propagation if m.bind else "") or "rprivate"
                out.append(
                    MountSpec(
                        type="bind",
                        source=src,
                        destination=target,
                        rw=not m.read_only,
                        propagation=prop,
                    )
                )
            elif typ == "tmpfs":
                opts = ["noexec", "nosuid", "nodev"]
                if m.tmpfs and m.tmpfs.size_bytes:
                    opts.append(f"size={m.tmpfs.size_bytes}")
                if m.tmpfs and m.tmpfs.mode:
                    opts.append(f"mode={m.tmpfs.mode:o}")
                out.append(
                    MountSpec(
                        type="tmpfs",
                        source="",
                        destination=target,
                        rw=not m.read_only,
                        options=tuple(opts),
                    )
                )
            else:
                raise InvalidParameter(
                    f"mount type {typ!r} is not available yet in this build of pyd"
                )
        for dest, optstr in mounts.tmpfs.items():
            opts = ["noexec", "nosuid", "nodev"]
            rw = True
            for o in (optstr or "").split(","):
                if not o:
                    continue
                if o == "ro":
                    rw = False
                elif o == "rw":
                    continue
                elif o in ("exec", "suid", "dev"):
                    opts = [x for x in opts if x != "no" + o]
                else:
                    opts.append(o)
            out.append(
                MountSpec(
                    type="tmpfs",
                    source="",
                    destination=dest,
                    rw=rw,
                    options=tuple(opts),
                    listed=False,
                )
            )
        seen: set[str] = set()
        for spec in out:
            if spec.destination in seen:
                raise InvalidParameter(f"Duplicate mount point: {spec.destination}")
            seen.add(spec.destination)
        return sorted(out, key=lambda m: m.destination.count("/"))

    async def prepare(
        self, container_id: str, mounts: Sequence[MountSpec], rootfs: str
    ) -> list[MountSpec]:
        """Bind sources of C{-v /host:/ctr} are created when missing, as dockerd does."""
        for m in mounts:
            if m.type == "bind" and not os.path.exists(m.source):
                os.makedirs(m.source, exist_ok=True)
        return list(mounts)

    async def unstage(self, container_id: str) -> None:
        """No staging points here."""

    async def release(
        self,
        container_id: str,
        remove_anonymous: bool,
        mounts: Sequence[MountSpec] | None = None,
    ) -> None:
        """Nothing recorded, nothing to release."""


# mypy checks the fakes against the seams they stand in for
_IS_NETWORK_PROVIDER: type[NetworkProvider] = BasicNetworkProvider
_IS_VOLUME_PROVIDER: type[VolumeProvider] = BasicVolumeProvider
