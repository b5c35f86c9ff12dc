"""Changes to an existing container's record (layer: engine): rename, and update of its
resources and restart policy (the live ones written to the runtime), each serialised by the
container's lock. Split from L{pyd.engine.containers.lifecycle}, which owns the process's life.
"""

from __future__ import annotations

from typing import Any

import attrs

from pyd.core.errors import Conflict, InvalidParameter, SystemError_
from pyd.core.ids import VALID_NAME
from pyd.core.records import Container
from pyd.drivers.runtime import spec as oci
from pyd.drivers.runtime.conmon import RuntimeFailed
from pyd.engine import honoured
from pyd.engine.containers.base import _resources_of, live_update_resources
from pyd.engine.containers.lifecycle import ContainerLifecycle
from pyd.engine.spec import parse_update, resources_of, rules


class ContainerEdit(ContainerLifecycle):
    """Rename and update."""

    async def rename(self, ref: str, new_name: str) -> None:
        """C{docker rename}. @raise Conflict: name taken. @raise InvalidParameter: bad name."""
        c = self.resolve(ref)
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        if not VALID_NAME.match(new_name):
            raise InvalidParameter(
                f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        name = new_name if new_name.startswith("/") else "/" + new_name
        if name == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        old = c.name
        c = attrs.evolve(c, name=name)
        try:
            await self._repo.save(c)
        except Conflict as e:
            raise Conflict(f"Error when allocating new name: {e.message}") from None
        self._cache[c.id] = c
        self._emit(c, "rename", oldName=old)

    async def update(self, ref: str, changes: dict[str, Any]) -> list[str]:
        """C{docker update}: resources and restart policy; live ones go to the runtime.

        @raise InvalidParameter: invalid values, mistyped JSON (dockerd's texts).
        """
        changes = parse_update(changes)
        pre_warnings, skip = honoured.check_update(changes, self.settings.limits)
        c = self.resolve(ref)
        async with self._lock(c.id):
            c = self.resolve(c.id)
            hc = dict(c.host_config)
            keys = (
                "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota",
                "CpuPeriod", "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight", "KernelMemory",
                "CpuRealtimePeriod", "CpuRealtimeRuntime", "OomKillDisable",
            )  # fmt: skip
            for k in keys:
                v = None if k in skip else changes.get(k)
                if v not in (None, 0, "") or (k == "PidsLimit" and v is not None and v != 0):
                    hc[k] = v
            if changes.get("NanoCpus"):
                hc["CpuQuota"] = 0
                hc["CpuPeriod"] = 0
            old_swap = c.host_config.get("MemorySwap") or 0
            if (
                hc.get("Memory")
                and changes.get("Memory")
                and not changes.get("MemorySwap")
                and old_swap > 0
                and hc["Memory"] > old_swap
            ):
                raise InvalidParameter(
                    "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
                )
            rp = changes.get("RestartPolicy")
            if (
                rp
                and rp.get("Name") is not None
                and (rp.get("Name") or rp.get("MaximumRetryCount"))
            ):
                rules.validate_restart_policy(rp, bool(hc.get("AutoRemove")))
                hc["RestartPolicy"] = {
                    "Name": rp.get("Name") or "no",
                    "MaximumRetryCount": rp.get("MaximumRetryCount") or 0,
                }
            warnings = pre_warnings + rules.validate_resources(hc, self.settings.ncpu)
            _check_cpu_update(c, changes)
            if c.state.running:
                res = oci.build_spec(
                    oci.RuntimeSpecInput(
                        args=("x",),
                        env=(),
                        cwd="/",
                        uid=0,
                        gid=0,
                        additional_gids=(),
                        terminal=False,
                        hostname="",
                        rootfs="",
                        resources=_resources_of(resources_of(hc)),
                    )
                )["linux"]["resources"]
                res = live_update_resources(res)
                try:
                    await self.runtime.update(c.id, res, runtime=self.oci_runtime(c))
                except RuntimeFailed as e:
                    raise SystemError_(f"Cannot update container {c.id}: {e.message}") from e
            c = await self._save(attrs.evolve(c, host_config=hc))
            self._emit(c, "update")
            return warnings


def _check_cpu_update(c: Container, changes: dict[str, Any]) -> None:
    """moby container/container_unix.go UpdateContainer: NanoCpus and CpuPeriod/CpuQuota
    exclude each other across updates (a 409, wrapped by daemon/update.go)."""
    old = c.host_config
    for new_key, old_key, text in (
        ("NanoCpus", "CpuPeriod", "Nano CPUs cannot be updated as CPU Period has already been set"),
        ("NanoCpus", "CpuQuota", "Nano CPUs cannot be updated as CPU Quota has already been set"),
        ("CpuPeriod", "NanoCpus", "CPU Period cannot be updated as NanoCPUs has already been set"),
        ("CpuQuota", "NanoCpus", "CPU Quota cannot be updated as NanoCPUs has already been set"),
    ):
        if (changes.get(new_key) or 0) > 0 and (old.get(old_key) or 0) > 0:
            raise Conflict(f"Cannot update container {c.id}: Conflicting options: {text}")
