"""The distribution service built on its first use (layer: engine).

Why: the service and what it runs on (the registry API client, blob transfers, the index client,
twisted.web's HTTP client protocol) are ~0.5 MB resident and ~20 modules a daemon that never
pulls, pushes, searches or logs in does not need. The daemon's start only empties the staging
directory, which needs none of them; the first other use (an API request, a build's FROM) builds
the real L{DistributionService} and is served by it from then on.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyd.core.seams import Blocking

if TYPE_CHECKING:
    from pyd.engine.distribution.service import DistributionService


async def clean_staging_dir(blocking: Blocking, staging_dir: str) -> None:
    """Delete what an interrupted pull or push left in C{staging_dir} and make it again."""
    await blocking.run(shutil.rmtree, staging_dir, True)
    await blocking.run(os.makedirs, staging_dir, 0o700, True)


class LazyDistribution:
    """Stands for the L{DistributionService} C{build} returns, built the first time one of
    its names is used (on the reactor thread, as the service's callers are)."""

    def __init__(
        self, build: Callable[[], DistributionService], blocking: Blocking, staging_dir: str
    ) -> None:
        self._build = build
        self._blocking = blocking
        self._staging_dir = staging_dir
        self._service: DistributionService | None = None

    def service(self) -> DistributionService:
        """The real service (built now if it is not yet)."""
        if self._service is None:
            self._service = self._build()
        return self._service

    async def clean_staging(self) -> None:
        """What L{DistributionService.clean_staging} does, without building it (daemon start)."""
        if self._service is not None:
            await self._service.clean_staging()
        else:
            await clean_staging_dir(self._blocking, self._staging_dir)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.service(), name)
