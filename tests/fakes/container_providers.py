"""Fakes of the three providers the container service uses (images, networks, volumes)."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import Any

from pyd.core.errors import NotFound
from pyd.core.records import Change, Endpoint, Image, MountSpec, NetworkSetup, PortMapping
from pyd.engine.contracts import ContainerImages, NetworkProvider, VolumeProvider
from pyd.engine.spec import MountRequest, NetworkRequest

BUSYBOX_ID = "sha256:" + "b" * 64


def busybox_image(**config: Any) -> Image:
    """An image record like tests/helpers/images.py's busybox."""
    cfg: dict[str, Any] = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["sh"],
    }
    cfg.update(config)
    return Image(
        id=BUSYBOX_ID,
        config={"config": cfg},
        repo_tags=("busybox:latest",),
        repo_digests=(),
        size=1000,
        created=1_700_000_000,
    )


class FakeContainerImages:
    """Images by name; the rw layer is a directory under C{root} (a rootfs with passwd/group)."""

    def __init__(self, root: str, images: dict[str, Image] | None = None) -> None:
        self.root = root
        self.images = images if images is not None else {"busybox": busybox_image()}
        self.layers: dict[str, str | None] = {}
        self.mounted: set[str] = set()

    async def resolve(self, ref: str) -> Image:
        name = ref.removesuffix(":latest")
        if name in self.images:
            return self.images[name]
        for img in self.images.values():
            if img.id == ref or img.id.removeprefix("sha256:").startswith(ref):
                return img
        raise NotFound(f"No such image: {ref if ':' in ref else ref + ':latest'}")

    async def image_sizes(self) -> dict[str, int]:
        return {img.id: img.size for img in self.images.values()}

    async def create_rw_layer(self, container_id: str, image_id: str | None) -> None:
        self.layers[container_id] = image_id
        rootfs = os.path.join(self.root, container_id, "merged")
        os.makedirs(os.path.join(rootfs, "etc"), exist_ok=True)
        with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
        with open(os.path.join(rootfs, "etc", "group"), "w") as f:
            f.write("root:x:0:\napp:x:1000:\nstaff:x:50:app\n")

    async def mount_rw_layer(self, container_id: str) -> str:
        if container_id not in self.layers:
            raise NotFound(f"no layer for {container_id}")
        self.mounted.add(container_id)
        return os.path.join(self.root, container_id, "merged")

    async def unmount_rw_layer(self, container_id: str) -> None:
        self.mounted.discard(container_id)

    async def rw_layers_mounted(self, container_ids: Collection[str]) -> set[str]:
        return self.mounted & set(container_ids)

    async def remove_rw_layer(self, container_id: str) -> None:
        self.mounted.discard(container_id)
        self.layers.pop(container_id, None)

    async def changes(self, container_id: str) -> list[Change]:
        return []


class FakeNetworkProvider:
    """Records calls; bridge containers get 10.250.0.N and an optional port mapping."""

    def __init__(self) -> None:
        self.setups: dict[str, NetworkSetup] = {}
        self.torn_down: list[str] = []
        self.released: list[str] = []
        self.stale_released: list[str] = []
        self.next_ip = 2
        self.links: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        self.plugged_ids: list[str] = []
        # what plugging a starting container's interfaces fails with (None: it does not)
        self.plug_failure: Exception | None = None

    def canonical_mode(self, network_mode: str) -> str:
        return network_mode

    async def validate(
        self,
        container_id: str,
        network_mode: str,
        network: NetworkRequest,
    ) -> None:
        if network_mode not in ("bridge", "host", "none", "default"):
            raise NotFound(f"network {network_mode} not found")

    async def setup(
        self,
        container_id: str,
        name: str,
        hostname: str,
        network_mode: str,
        network: NetworkRequest,
        exposed_ports: Sequence[str],
    ) -> NetworkSetup:
        if network_mode == "host":
            s = NetworkSetup(None, (), (), (), (), (), ())
        elif network_mode == "none":
            s = NetworkSetup("", (), (), (), (), (), ())
        else:
            ip = f"10.250.0.{self.next_ip}"
            self.next_ip += 1
            ports = []
            for key, binds in network.port_bindings.items():
                port, _, proto = key.partition("/")
                for b in binds or []:
                    ports.append(
                        PortMapping(
                            int(port),
                            proto or "tcp",
                            b.host_ip or "0.0.0.0",
                            int(b.host_port or 32768),
                        )
                    )
            s = NetworkSetup(
                f"/run/netns/{container_id[:12]}",
                (
                    Endpoint(
                        "bridge", "n" * 64, "e" * 64, ip, 24, "10.250.0.1", "02:42:0a:fa:00:02"
                    ),
                ),
                tuple(ports),
                (
                    ("127.0.0.1", "localhost"),
                    *((h.split(":", 1)[1], h.split(":", 1)[0]) for h in network.extra_hosts),
                    (ip, hostname),
                ),
                ("10.250.0.1",),
                (),
                (),
            )
        self.setups[container_id] = s
        return s

    async def allow_links(
        self, container_id: str, children: Sequence[tuple[str, Sequence[str]]]
    ) -> None:
        self.links[container_id] = [(ip, tuple(ports)) for ip, ports in children]

    async def plugged(self, container_id: str) -> None:
        self.plugged_ids.append(container_id)
        if self.plug_failure is not None:
            raise self.plug_failure

    async def teardown(self, container_id: str) -> None:
        self.torn_down.append(container_id)

    async def release(self, container_id: str) -> None:
        self.released.append(container_id)

    async def release_stale(self, running: Collection[str]) -> None:
        self.stale_released.extend(sorted(set(self.setups) - set(running) - set(self.torn_down)))


class FakeVolumeProvider:
    """Bind mounts from C{Binds}; records prepare/release."""

    def __init__(self) -> None:
        self.prepared: list[str] = []
        self.released: list[tuple[str, bool]] = []

    async def resolve_mounts(
        self,
        container_id: str,
        mounts: MountRequest,
        image_volumes: Sequence[str],
        volumes_from: Sequence[Sequence[MountSpec]] = (),
    ) -> list[MountSpec]:
        out = []
        for b in mounts.binds:
            src, dst, *rest = b.split(":")
            out.append(
                MountSpec("bind", src, dst, rw=not rest or rest[0] != "ro", propagation="rprivate")
            )
        for v in image_volumes:
            out.append(
                MountSpec("volume", f"/vol/{container_id[:6]}", v, name="anon" + container_id[:6])
            )
        return out

    async def prepare(
        self, container_id: str, mounts: Sequence[MountSpec], rootfs: str
    ) -> list[MountSpec]:
        self.prepared.append(container_id)
        return list(mounts)

    async def unstage(self, container_id: str) -> None:
        """No staging points here."""

    async def release(
        self,
        container_id: str,
        remove_anonymous: bool,
        mounts: Sequence[MountSpec] | None = None,
    ) -> None:
        self.released.append((container_id, remove_anonymous))


# mypy checks the fakes against the seams they stand in for
_IS_CONTAINER_IMAGES: type[ContainerImages] = FakeContainerImages
_IS_NETWORK_PROVIDER: type[NetworkProvider] = FakeNetworkProvider
_IS_VOLUME_PROVIDER: type[VolumeProvider] = FakeVolumeProvider
