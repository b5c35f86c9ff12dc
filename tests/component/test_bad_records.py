"""One record that cannot be rendered fails no listing and no inspect: planted in the database
through the repositories (as an older pyd could have stored it), the whole daemon in process
lists it with its id, inspects it as a stub and logs why. (Containers: test_containers_api's
test_listing_survives_a_bad_record; networks: test_networks_api's
test_bad_record_listed_with_its_id.)"""

from __future__ import annotations

import json
import os

from twisted.trial.unittest import SynchronousTestCase

from pyd.core.records import Volume
from pyd.core.seams import InlineBlocking
from pyd.state.db import Database, make_engine
from pyd.state.images import ImageRepository
from pyd.state.volumes import VolumeRepository
from tests.helpers.wiring import InProcessDaemon

BAD_IMAGE = "sha256:" + "b" * 64


class BadRecordTests(SynchronousTestCase):
    """Lists and inspects of images and volumes with one unrenderable record each."""

    def setUp(self) -> None:
        self.daemon = InProcessDaemon(prefix="pyd-t-badrec-")
        self.addCleanup(self.daemon.cleanup)
        db = Database(make_engine(os.path.join(self.daemon.data_root, "pyd.db")), InlineBlocking())
        # an image whose config section is a list, not an object
        self.successResultOf(
            ImageRepository(db).add_image(
                BAD_IMAGE, json.dumps({"config": ["x"], "rootfs": {}}).encode(), None, 1, 1
            )
        )
        # a volume whose creation time no calendar has (year > 9999)
        bad_time = 2**62
        self.successResultOf(
            VolumeRepository(db).get_or_add(
                Volume("badvol", "local", "/nowhere", bad_time, None, None)
            )
        )
        db.close()
        self.successResultOf(self.daemon.start())
        self.addCleanup(self.stop)
        self.call = self.daemon.call

    def stop(self) -> None:
        d = self.daemon.stop()
        if d is not None:
            self.successResultOf(d)

    def test_images(self) -> None:
        """docker images lists the bad image by its id; inspect shows a stub."""
        code, rows = self.call("GET", "/images/json?all=1")
        self.assertEqual(code, 200, rows)
        self.assertIn(BAD_IMAGE, [r["Id"] for r in rows])
        code, info = self.call("GET", f"/images/{BAD_IMAGE}/json")
        self.assertEqual(code, 200, info)
        self.assertEqual(info["Id"], BAD_IMAGE)
        self.assertTrue(self.flushLoggedErrors(ValueError, TypeError, OverflowError, OSError))

    def test_volumes(self) -> None:
        """docker volume ls lists the bad volume; inspect shows a stub."""
        code, body = self.call("GET", "/volumes")
        self.assertEqual(code, 200, body)
        self.assertIn("badvol", [r["Name"] for r in body["Volumes"]])
        code, info = self.call("GET", "/volumes/badvol")
        self.assertEqual(code, 200, info)
        self.assertEqual(info["Name"], "badvol")
        self.assertTrue(self.flushLoggedErrors(ValueError, TypeError, OverflowError, OSError))
