"""What one C{docker rm} of a created container costs the database (issue 21: a bulk rm of 200
containers trailed dockerd on ~6-7 round trips each): the statements and the DB-thread round
trips per removal are counted so they cannot creep back. The whole daemon runs in memory
(L{InProcessDaemon}); SQLAlchemy's engine events count what reaches SQLite."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers.images import DEFAULT_TAG, busybox_image_tar
from tests.helpers.statements import count_statements
from tests.helpers.wiring import InProcessDaemon

# The removal's floor with crash consistency kept: mark "removing" (committed before anything
# is released), forget the writable layer (and release its chain), delete the row (endpoints
# and volume uses cascade), record the destroy event. A container that holds no network
# resource (not running) has its endpoints left to the row's cascade without reading them.
ROUND_TRIPS = 4


class RemoveStatementTests(SynchronousTestCase):
    """Statements and round trips of DELETE /containers/ID."""

    def setUp(self) -> None:
        self.daemon = InProcessDaemon()
        self.addCleanup(self.daemon.cleanup)
        self.successResultOf(self.daemon.start())
        self.addCleanup(self.stop)
        self.call = self.daemon.call
        self.statements: list[str] = []
        self.round_trips = 0
        event.listen(Engine, "begin", self._begin)
        self.addCleanup(event.remove, Engine, "begin", self._begin)
        count_statements(self, self.statements)
        built = busybox_image_tar(os.path.join(self.daemon.tmp, "bb.tar"))
        with open(built.path, "rb") as f:
            code, _ = self.call("POST", "/v1.50/images/load?quiet=1", f.read(), "application/x-tar")
        self.assertEqual(code, 200)

    def _begin(self, conn: Any) -> None:
        self.round_trips += 1

    def stop(self) -> None:
        d = self.daemon.stop()
        if d is not None:
            self.successResultOf(d)

    def create(self, **body: Any) -> str:
        code, out = self.call(
            "POST", "/v1.50/containers/create", {"Image": DEFAULT_TAG, "Cmd": ["true"], **body}
        )
        self.assertEqual(code, 201, out)
        cid: str = out["Id"]
        return cid

    def measure_rm(self, cid: str, query: str = "") -> tuple[int, list[str]]:
        self.statements.clear()
        self.round_trips = 0
        code, body = self.call("DELETE", f"/v1.50/containers/{cid}{query}")
        self.assertEqual(code, 204, body)
        return self.round_trips, list(self.statements)

    def test_created_container(self) -> None:
        """A created container without volumes: four round trips, five statements (the rw
        layer's row goes in one statement that names its chain, whose release asks once
        whether its top layer is still used), each container alike."""
        ids = [self.create() for _ in range(3)]
        for cid in ids:
            trips, stmts = self.measure_rm(cid)
            self.assertEqual(trips, ROUND_TRIPS, stmts)
            self.assertEqual(len(stmts), 5, stmts)
            self.assertEqual(stmts.count("UPDATE"), 1, stmts)  # the "removing" mark
            self.assertEqual(stmts.count("INSERT"), 1, stmts)  # the destroy event
        code, listed = self.call("GET", "/v1.50/containers/json?all=1")
        self.assertEqual((code, listed), (200, []))

    def test_volume_uses_forgotten(self) -> None:
        """With a named volume the uses are read and forgotten (one round trip more; the
        volume's record is known), and the volume is free for C{docker volume rm} once its
        last user is gone."""
        first = self.create(HostConfig={"Binds": ["data:/data"]})
        second = self.create(HostConfig={"Binds": ["data:/data"]})
        trips, stmts = self.measure_rm(first)
        self.assertEqual(trips, ROUND_TRIPS + 1, stmts)
        code, _ = self.call("DELETE", "/v1.50/volumes/data")
        self.assertEqual(code, 409)
        self.measure_rm(second)
        code, _ = self.call("DELETE", "/v1.50/volumes/data")
        self.assertEqual(code, 204)

    def test_anonymous_volume_removed_with_v(self) -> None:
        """C{rm -v} still deletes the container's anonymous volume."""
        cid = self.create(Volumes={"/anon": {}})
        code, vols = self.call("GET", "/v1.50/volumes")
        self.assertEqual(len(vols["Volumes"]), 1)
        self.measure_rm(cid, "?v=1")
        code, vols = self.call("GET", "/v1.50/volumes")
        self.assertEqual((code, vols["Volumes"]), (200, []))


class ImageRequestStatementTests(RemoveStatementTests):
    """Round trips of the image rows that trailed dockerd (issue 21): `docker images`, `docker
    image inspect` and `docker rmi`. The image repository answers repeated reads from its
    cache, emptied by every write of the images (or of the layers, for chains)."""

    def measure(self, method: str, path: str) -> tuple[int, list[str]]:
        self.statements.clear()
        self.round_trips = 0
        code, body = self.call(method, path)
        self.assertIn(code, (200, 204), body)
        return self.round_trips, list(self.statements)

    def test_created_container(self) -> None:
        """(The removal's counts are RemoveStatementTests'.)"""

    def test_volume_uses_forgotten(self) -> None:
        """(RemoveStatementTests')"""

    def test_anonymous_volume_removed_with_v(self) -> None:
        """(RemoveStatementTests')"""

    def test_list_and_inspect(self) -> None:
        """The first list reads the images and their references (one round trip, two
        statements); an inspect reads the reference, the image and the whole chain (one
        statement: a recursive CTE); asked again, neither reads anything."""
        self.assertEqual(self.measure("GET", "/v1.50/images/json"), (1, ["SELECT", "SELECT"]))
        self.assertEqual(self.measure("GET", "/v1.50/images/json"), (0, []))
        path = f"/v1.50/images/{DEFAULT_TAG}/json"
        trips, stmts = self.measure("GET", path)
        self.assertEqual((trips, len(stmts)), (3, 4), stmts)
        self.assertEqual(self.measure("GET", path), (0, []))

    def test_rmi(self) -> None:
        """rmi of an image's only tag, its inspect already read: who uses it, the untag, the
        image's remaining references, its children, then one transaction deleting the image
        and releasing its chain (two statements a layer)."""
        self.measure("GET", f"/v1.50/images/{DEFAULT_TAG}/json")
        trips, stmts = self.measure("DELETE", f"/v1.50/images/{DEFAULT_TAG}")
        self.assertEqual(trips, 7, stmts)


class VolumeRequestStatementTests(ImageRequestStatementTests):
    """Round trips of the volume API rows that trailed dockerd (issue 21): a create and a
    removal are one transaction each, their event stored in it; inspect and list read nothing
    (the repository's mirror of the table)."""

    def test_list_and_inspect(self) -> None:
        """(ImageRequestStatementTests')"""

    def test_create_inspect_list_remove(self) -> None:
        self.call("GET", "/v1.50/volumes")  # installs the mirror
        self.statements.clear()
        self.round_trips = 0
        code, _ = self.call("POST", "/v1.50/volumes/create", {"Name": "counted"})
        self.assertEqual(code, 201)
        self.assertEqual((self.round_trips, self.statements), (1, ["INSERT", "INSERT"]))
        self.assertEqual(self.measure("GET", "/v1.50/volumes/counted"), (0, []))
        self.assertEqual(self.measure("GET", "/v1.50/volumes"), (0, []))
        trips, stmts = self.measure("DELETE", "/v1.50/volumes/counted")
        # the row's deletion and its destroy event, in one transaction
        self.assertEqual((trips, stmts), (1, ["DELETE", "INSERT"]))
