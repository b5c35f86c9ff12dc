"""The distribution service (layer: engine): pull, push, search and login as one object."""

from __future__ import annotations

from twisted.logger import Logger

from pyd.engine.distribution.pull import Pulls
from pyd.engine.distribution.push import Pushes
from pyd.engine.distribution.search import IndexOps

log = Logger()


class DistributionService(Pulls, Pushes, IndexOps):
    """C{docker pull}, C{docker push} and C{docker login} (POST /images/create, /push, /auth)."""
