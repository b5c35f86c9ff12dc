"""What listing and disk usage cost as the number of containers and images grows (issue 21,
scale: with a thousand of each, `docker ps -a` was quadratic in the link names and
`docker system df` made a database round trip per container and per image). Counted, not
timed: the database round trips of a request do not grow with the containers and images, and
the link names are gathered in one pass. The whole daemon runs in memory."""

from __future__ import annotations

import os
from typing import Any
from unittest import mock

from sqlalchemy import event
from sqlalchemy.engine import Engine
from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.containers import links
from tests.helpers.images import DEFAULT_TAG, busybox_image_tar
from tests.helpers.wiring import InProcessDaemon


class ScaleCountTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.daemon = InProcessDaemon()
        self.addCleanup(self.daemon.cleanup)
        self.successResultOf(self.daemon.start())
        self.addCleanup(self._stop)
        self.round_trips = 0
        event.listen(Engine, "begin", self._begin)
        self.addCleanup(event.remove, Engine, "begin", self._begin)
        self.images = 0
        self.users: dict[str, int] = {DEFAULT_TAG: 0}  # containers per image, as made
        self.load(DEFAULT_TAG)

    def _stop(self) -> None:
        d = self.daemon.stop()
        if d is not None:
            self.successResultOf(d)

    def _begin(self, conn: Any) -> None:
        self.round_trips += 1

    def load(self, tag: str, **kw: Any) -> None:
        built = busybox_image_tar(os.path.join(self.daemon.tmp, "img.tar"), tag, **kw)
        with open(built.path, "rb") as f:
            code, _ = self.daemon.call(
                "POST", "/v1.50/images/load?quiet=1", f.read(), "application/x-tar"
            )
        self.assertEqual(code, 200)

    def grow(self, containers: int, images: int) -> None:
        """Add that many images (each its own config) and containers (over the images)."""
        for _ in range(images):
            self.images += 1
            self.load(f"scale/img:{self.images}", config={"Labels": {"i": str(self.images)}})
            self.users[f"scale/img:{self.images}"] = 0
        for i in range(containers):
            image = f"scale/img:{i % self.images + 1}" if self.images else DEFAULT_TAG
            self.users[image] += 1
            code, out = self.daemon.call(
                "POST", "/v1.50/containers/create", {"Image": image, "Cmd": ["true"]}
            )
            self.assertEqual(code, 201, out)

    def trips(self, path: str) -> tuple[int, Any]:
        self.round_trips = 0
        code, body = self.daemon.call("GET", path)
        self.assertEqual(code, 200, body)
        return self.round_trips, body

    def test_df_round_trips_do_not_grow(self) -> None:
        """`system df` and `ps -s` cost the same round trips with 3 or 15 containers and 2 or
        8 images; every image's container count is right."""
        self.grow(3, 2)
        small_df, _ = self.trips("/v1.50/system/df")
        small_ps, _ = self.trips("/v1.50/containers/json?all=1&size=1")
        self.grow(12, 6)
        big_df, df = self.trips("/v1.50/system/df")
        big_ps, listed = self.trips("/v1.50/containers/json?all=1&size=1")
        self.assertEqual((big_df, big_ps), (small_df, small_ps))
        self.assertEqual(len(df["Containers"]), 15)
        self.assertEqual(len(listed), 15)
        self.assertTrue(all(c["SizeRootFs"] > 0 for c in listed))  # the image's size added
        counts = {i["RepoTags"][0]: i["Containers"] for i in df["Images"]}
        self.assertEqual(counts, self.users)
        self.assertEqual(sum(counts.values()), 15)

    def test_list_gathers_link_names_once(self) -> None:
        """The link names of a listing are read in one pass over the containers (it was one
        per listed container), and still name the child."""
        self.grow(20, 0)
        code, out = self.daemon.call("POST", "/v1.50/containers/create?name=db",
                                     {"Image": DEFAULT_TAG})  # fmt: skip
        self.assertEqual(code, 201, out)
        code, out = self.daemon.call(
            "POST", "/v1.50/containers/create?name=app",
            {"Image": DEFAULT_TAG, "HostConfig": {"Links": ["db:web"]}},
        )  # fmt: skip
        self.assertEqual(code, 201, out)
        with mock.patch.object(links, "links_of", wraps=links.links_of) as seen:
            code, listed = self.daemon.call("GET", "/v1.50/containers/json?all=1")
        self.assertEqual(code, 200)
        self.assertEqual(len(listed), 22)
        self.assertLessEqual(seen.call_count, 22)
        names = {c["Id"]: c["Names"] for c in listed}
        self.assertIn(["/app/web", "/db"], names.values())
