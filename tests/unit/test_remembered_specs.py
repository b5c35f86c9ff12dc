"""L{pyd.engine.spec.remembered}: a container's spec is decoded once per record and used again
only for the same sections with the same values."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.spec import remembered
from pyd.engine.spec.parse import stored_spec
from pyd.engine.spec.remembered import RememberedSpecs


def sections(cmd: str = "true") -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return (
        {"Image": "bb", "Cmd": [cmd], "Env": ["A=1"]},
        {
            "AutoRemove": True,
            "NetworkMode": "default",
            "Ulimits": [{"Name": "nofile", "Soft": 5, "Hard": 9}],
        },
        {"EndpointsConfig": {}},
    )


class RememberedSpecTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.decoded = 0

        def counting(*args: Any) -> Any:
            self.decoded += 1
            return stored_spec(*args)

        self.patch(remembered, "stored_spec", counting)
        self.specs = RememberedSpecs(size=3)

    def test_same_sections_decoded_once(self) -> None:
        s = sections()
        first = self.specs.spec("c1", *s)
        self.assertEqual(first, stored_spec(*s))
        self.assertIs(self.specs.spec("c1", *s), first)
        self.assertEqual(self.decoded, 1)

    def test_new_record_decoded_again(self) -> None:
        """Equal values in new objects (a new record) are decoded again: identity is part of
        the key, so a record built from other values never shares a spec by accident."""
        self.specs.spec("c1", *sections())
        self.specs.spec("c1", *sections())
        self.assertEqual(self.decoded, 2)

    def test_changed_in_place_decoded_again(self) -> None:
        s = sections()
        before = self.specs.spec("c1", *s)
        s[1]["AutoRemove"] = False
        after = self.specs.spec("c1", *s)
        self.assertEqual(self.decoded, 2)
        self.assertTrue(before.restart.auto_remove)
        self.assertFalse(after.restart.auto_remove)

    def test_bounded_and_forgotten(self) -> None:
        kept = {f"c{i}": sections() for i in range(4)}
        for cid, s in kept.items():
            self.specs.spec(cid, *s)
        self.assertEqual(len(self.specs), 3)
        self.specs.spec("c0", *kept["c0"])  # the oldest went: decoded again
        self.assertEqual(self.decoded, 5)
        self.specs.forget("c0")
        self.assertEqual(len(self.specs), 2)
        self.specs.forget("nope")
