"""The container record's copy of a request's JSON sections (pyd.engine.containers.runconfig
.stored_copy): a deep copy whose keys are shared between containers."""

from __future__ import annotations

import json
import unittest

from pyd.engine.containers.runconfig import stored_copy

BODY = '{"Hostname": "", "Env": ["A=1"], "Labels": {"k": "v"}, "Healthcheck": {"Test": ["NONE"]}}'


class StoredCopyTests(unittest.TestCase):
    def test_equal_and_deep(self) -> None:
        """The copy equals the section; changing the copy's lists and dicts leaves the
        section as it was."""
        section = json.loads(BODY)
        copy = stored_copy(section)
        self.assertEqual(copy, section)
        copy["Env"].append("B=2")
        copy["Labels"]["k"] = "changed"
        copy["Healthcheck"]["Test"][0] = "CMD"
        self.assertEqual(section, json.loads(BODY))

    def test_keys_shared_between_requests(self) -> None:
        """Two requests decode to distinct key strings; their copies share one of each, at
        every depth."""
        a, b = json.loads(BODY), json.loads(BODY)
        key_a = next(k for k in a if k == "Healthcheck")
        key_b = next(k for k in b if k == "Healthcheck")
        self.assertIsNot(key_a, key_b)
        ca, cb = stored_copy(a), stored_copy(b)
        for outer in ("Hostname", "Labels", "Healthcheck"):
            ka = next(k for k in ca if k == outer)
            kb = next(k for k in cb if k == outer)
            self.assertIs(ka, kb)
        ta = next(k for k in ca["Healthcheck"] if k == "Test")
        tb = next(k for k in cb["Healthcheck"] if k == "Test")
        self.assertIs(ta, tb)
