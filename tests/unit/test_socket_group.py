"""Which group owns the API's Unix sockets: --group, or dockerd's "docker" for pyd's default."""

from __future__ import annotations

import grp

from twisted.trial.unittest import SynchronousTestCase

from pyd.daemon import tree


class _Group:
    def __init__(self, gid: int) -> None:
        self.gr_gid = gid


class SocketGroupTests(SynchronousTestCase):
    """The default group falls back to docker; a named group never does."""

    def setUp(self) -> None:
        self.groups: dict[str, int] = {}

        def getgrnam(name: str) -> _Group:
            if name not in self.groups:
                raise KeyError(name)
            return _Group(self.groups[name])

        self.patch(grp, "getgrnam", getgrnam)

    def test_default_group(self) -> None:
        """pyd's default group when it exists, else docker, else none."""
        self.groups = {"pyd": 900, "docker": 999}
        self.assertEqual(tree.socket_group_id("pyd"), 900)
        self.groups = {"docker": 999}
        self.assertEqual(tree.socket_group_id("pyd"), 999)
        self.groups = {}
        self.assertIsNone(tree.socket_group_id("pyd"))

    def test_named_group(self) -> None:
        """An operator's --group is used as given: no fallback to docker."""
        self.groups = {"docker": 999}
        self.assertIsNone(tree.socket_group_id("ops"))
        self.groups = {"ops": 1200, "docker": 999}
        self.assertEqual(tree.socket_group_id("ops"), 1200)
