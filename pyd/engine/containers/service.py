"""The container service (layer: engine): L{ContainerService}, made of the parts in this package.

Docker's rules live here; the runtime driver (crun + conmon) only executes. Each container's
lifecycle operations are serialised by a L{DeferredLock}; the exit of a running container arrives
from the runtime's exit watcher and is handled once per run (L{pyd.engine.containers.base._Run}).

The parts build on each other, each adding one concern: C{base} (state, lookups, views) <- C{logs}
<- C{health} <- C{create} <- C{lifecycle} <- C{restart} (exits and policies) <- C{restore}.

Other areas (attach, exec, stats, archive) build on L{ContainerService.running} which gives
the bundle, conmon's attach socket and the container's pid.
"""

from __future__ import annotations

from twisted.logger import Logger

from pyd.engine.containers.restore import ContainerRestore

log = Logger()


class ContainerService(ContainerRestore):
    """Docker's container lifecycle over a L{RuntimeDriver} and the three providers."""
