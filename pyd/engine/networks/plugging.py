"""A container's interfaces plugged and unplugged in the background (layer: engine): the veth
pairs of a starting container, plugged while the runtime creates it, and the host ends of a
stopped one's, deleted after its namespace went.

Both take tens of milliseconds of the kernel's (a veth made, moved, configured and waited up;
a veth's deletion waits for RCU grace periods) that nothing needs at once: the runtime's create
joins the namespace by its path, and the process starts only once its interfaces are up
(L{Plugging.plugged}); a released host end is inert once down, and a new one of the same name
waits for its deletion (L{Plugging._reaped}).
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from pyd.core.deferreds import shield
from pyd.drivers.network.netlink import Interface
from pyd.engine.networks.base import NetworkBase

log = Logger()


class Plugging(NetworkBase):
    """The background interface work of L{pyd.engine.networks.endpoints.Endpoints}."""

    async def _plug_all(self, path: str, plugs: Sequence[Interface]) -> None:
        for iface in plugs:
            await self._blocking(self._nl.attach, path, iface)

    async def plugged(self, container_id: str) -> None:
        """Wait until the interfaces L{setup} began plugging are plugged and up; raises what
        plugging failed with. The container's process must not start before."""
        plugging = self._plugging.pop(container_id, None)
        if plugging is not None:
            await plugging

    async def _unplugging(self, cid: str) -> None:
        """Let a plugging still under way finish, whatever its outcome, before what it made is
        undone (a tear-down, a failed set-up)."""
        plugging = self._plugging.pop(cid, None)
        if plugging is not None:
            try:
                await plugging
            except Exception:  # noqa: BLE001 - reported by the start that awaited it, if any; the tear-down follows
                log.debug("plugging {cid} failed before its tear-down", cid=cid)

    def _reap(self, names: Sequence[str]) -> None:
        """Delete released host ends in the background (gone already, with their namespace,
        unless something still holds it); an attach of the same name waits (L{_reaped})."""
        for name in names:
            d: Deferred[object] = Deferred.fromCoroutine(self._blocking(self._nl.delete_link, name))

            def done(result: object, name: str = name, d: Deferred[object] = d) -> None:
                if self._reaping.get(name) is d:
                    del self._reaping[name]
                if isinstance(result, Failure):
                    log.warn("deleting {name}: {err}", name=name, err=result.getErrorMessage())

            self._reaping[name] = d
            d.addBoth(done)

    async def _reaped(self, name: str) -> None:
        """Once the background deletion of host end C{name}, if any, has ended."""
        pending = self._reaping.get(name)
        if pending is not None and not pending.called:
            # shielded: a start cancelled while it waits leaves the deletion running
            await shield(pending, f"deleting {name}")
