"""The honoured-or-refused audit: every create field of API 1.50 is honoured (with a test of its
effect), refused (its error checked here), discarded as dockerd does (its warning checked
here) or output only; docs/api-coverage.md shows the same table."""

from __future__ import annotations

import ast
import json
import os
from typing import Any

from twisted.trial import unittest

from pyd.core.errors import InvalidParameter
from pyd.engine import honoured
from pyd.engine.audit import AUDIT
from pyd.engine.confinement import Confinement
from pyd.engine.spec import parse_create

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OFFICIAL = os.path.join(ROOT, "tests", "data", "engine_api_v1.50_create_fields.json")
SHARED_YAML = os.path.join(os.path.dirname(ROOT), "..", "shared", "reference", "engine-api")

# A body that sets each refused field, and the words of its 400.
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "Config.NetworkDisabled": ({"NetworkDisabled": True}, "NetworkDisabled is not supported"),
    "HostConfig.Cgroup": ({"HostConfig": {"Cgroup": "container:x"}}, "HostConfig.Cgroup is not supported"),
    "HostConfig.StorageOpt": ({"HostConfig": {"StorageOpt": {"size": "1G"}}}, "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
    "HostConfig.DeviceRequests": ({"HostConfig": {"DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}]}}, 'could not select device driver "" with capabilities: [[gpu]]'),
    "HostConfig.IOMaximumIOps": ({"HostConfig": {"IOMaximumIOps": 5}}, "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"),
    "HostConfig.IOMaximumBandwidth": ({"HostConfig": {"IOMaximumBandwidth": 5}}, "Invalid QoS settings"),
    "EndpointSettings.GwPriority": ({"NetworkingConfig": {"EndpointsConfig": {"n": {"GwPriority": 5}}}}, "GwPriority is not supported"),
}  # fmt: skip

# A body that sets each field dockerd discards where the kernel cannot apply it, and the warning.
DISCARDED: dict[str, tuple[dict[str, Any], str]] = {
    "HostConfig.BlkioWeight": ({"BlkioWeight": 300}, "Weight discarded."),
    "HostConfig.BlkioWeightDevice": ({"BlkioWeightDevice": [{"Path": "/dev/null", "Weight": 300}]}, "Weight-device discarded."),
    "HostConfig.KernelMemoryTCP": ({"KernelMemoryTCP": 8 << 20}, "kernel memory TCP limit"),
    "HostConfig.MemorySwappiness": ({"MemorySwappiness": 10}, "Memory swappiness discarded."),
    "HostConfig.OomKillDisable": ({"OomKillDisable": True}, "OomKillDisable discarded."),
    "HostConfig.CpuPercent": ({"CpuPercent": 50}, "linux does not support CPU percent. Percent discarded."),
}  # fmt: skip

# Honoured fields whose effect test is not named in the table yet. This list only shrinks: a
# field leaves it when its row names the test that shows its effect.
NO_EFFECT_TEST_NAMED = frozenset(
    k for k, row in AUDIT.items() if row.verdict == "honoured" and not row.test
)
_KNOWN_UNNAMED = 0


def _test_functions(path: str) -> set[str]:
    """The test functions of a test module: C{test_*} at module level and C{test_*} methods of
    its classes (parsed, not imported: e2e modules need their daemons' fixtures)."""
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    out: set[str] = set()
    for node in tree.body:
        defs = node.body if isinstance(node, ast.ClassDef) else [node]
        for d in defs:
            if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef) and d.name.startswith("test_"):
                out.add(d.name)
    return out


def _official() -> dict[str, list[str]]:
    with open(OFFICIAL) as f:
        data = json.load(f)
    return {k: data[k] for k in ("Config", "HostConfig", "NetworkingConfig", "EndpointSettings")}


def _check(body: dict[str, Any], limits: honoured.HostLimits) -> tuple[list[str], dict[str, Any]]:
    """The create-time checks, in the order the container service runs them."""
    spec = parse_create({"Image": "busybox", **body}, ncpu=2)
    Confinement().check(spec)
    return honoured.check_create(spec, limits)


class AuditTests(unittest.TestCase):
    def test_every_field_has_a_verdict(self) -> None:
        """Each property of the API 1.50 create body is in the table, and nothing else is
        (KernelMemory, gone from the API at 1.42, is dropped by the parser as dockerd does)."""
        wire = {f"{s}.{n}" for s, names in _official().items() for n in names}
        self.assertEqual(sorted(wire - set(AUDIT)), [])
        self.assertEqual(sorted(set(AUDIT) - wire), [])

    def test_official_list_is_the_spec(self) -> None:
        """The field list in tests/data is the v1.50 spec's (checked when the reference copy of
        the spec is at hand)."""
        path = os.path.join(SHARED_YAML, "v1.50.yaml")
        if not os.path.exists(path):
            path = "/work/shared/reference/engine-api/v1.50.yaml"
        if not os.path.exists(path):
            raise unittest.SkipTest("the API spec's reference copy is not on this machine")
        import yaml

        with open(path) as f:
            defs = yaml.safe_load(f)["definitions"]

        def props(name: str) -> set[str]:
            d = defs[name]
            out = set(d.get("properties") or {})
            for part in d.get("allOf") or ():
                if "$ref" in part:
                    out |= props(part["$ref"].rsplit("/", 1)[1])
                out |= set(part.get("properties") or {})
            return out

        o = _official()
        self.assertEqual(set(o["Config"]), props("ContainerConfig"))
        self.assertEqual(set(o["HostConfig"]), props("HostConfig"))
        self.assertEqual(set(o["EndpointSettings"]), props("EndpointSettings"))

    def test_refused_fields_are_refused(self) -> None:
        """Each refused field, sent alone, is a 400 with its reason."""
        refused = {k for k, row in AUDIT.items() if row.verdict == "refused"}
        self.assertEqual(refused, set(REFUSED))
        for field, (body, words) in REFUSED.items():
            with self.assertRaises(InvalidParameter, msg=field) as cm:
                _check(body, honoured.HostLimits())
            self.assertIn(words, str(cm.exception), field)

    def test_discarded_fields_warn(self) -> None:
        """On a kernel without the feature: dockerd's warning, and the stored value is zero;
        with the feature (cgroup v1 with weight and swappiness): no warning for those."""
        discarded = {k for k, row in AUDIT.items() if row.verdict == "discarded"}
        self.assertEqual(discarded, set(DISCARDED))
        bare = honoured.HostLimits(cgroup_v2=True, io_weight=False, swappiness=False)
        for field, (hc, words) in DISCARDED.items():
            warnings, discard = _check({"HostConfig": hc}, bare)
            self.assertTrue(any(words in w for w in warnings), (field, warnings))
            self.assertIn(field.split(".", 1)[1], discard)
        full = honoured.HostLimits(
            cgroup_v2=False, io_weight=True, swappiness=True, kernel_tcp=True
        )
        for key in ("BlkioWeight", "MemorySwappiness", "OomKillDisable", "KernelMemoryTCP"):
            # with a memory limit: dockerd warns about an OOM-killer disabled without one
            hc = {**DISCARDED[f"HostConfig.{key}"][0], "Memory": 1 << 26}
            warnings, discard = _check({"HostConfig": hc}, full)
            self.assertEqual((warnings, discard), ([], {}), key)
        warnings, _ = _check({"HostConfig": {"OomKillDisable": True}}, full)
        self.assertEqual(warnings, [honoured.OOM_WITHOUT_LIMIT])

    def test_named_effect_tests_exist(self) -> None:
        """Every test a row names (C{tests/<file>.py::<function>}, or C{::<Class>::<method>})
        is a test function in that file: a C{test_} function at module level or a C{test_}
        method of a class there (a helper, a comment or a string of that name does not count)."""
        for field, row in AUDIT.items():
            if not row.test:
                continue
            path, _, name = row.test.partition("::")
            self.assertTrue(path.startswith("tests/") and path.endswith(".py"), (field, path))
            self.assertIn(name.rsplit("::", 1)[-1], _test_functions(path), (field, row.test))

    def test_unnamed_effect_tests_only_shrink(self) -> None:
        """Honoured rows without a named effect test: no more than the cap, which is lowered
        each time a row gets its test (so it can only go down)."""
        self.assertLessEqual(
            len(NO_EFFECT_TEST_NAMED), _KNOWN_UNNAMED, sorted(NO_EFFECT_TEST_NAMED)
        )

    def test_docs_table(self) -> None:
        """docs/api-coverage.md has one row per field with its verdict and its named effect test."""
        with open(os.path.join(ROOT, "docs", "api-coverage.md")) as f:
            doc = f.read()
        for field, row in AUDIT.items():
            line = next((x for x in doc.splitlines() if x.startswith(f"| `{field}` |")), "")
            self.assertTrue(line.startswith(f"| `{field}` | {row.verdict} |"), field)
            if row.test:
                self.assertIn(f"`{row.test}", line, field)


class UpdateTests(unittest.TestCase):
    def test_update_fields_applied_or_refused(self) -> None:
        """docker update: the fields it changes pass; others are refused naming them; what the
        kernel cannot apply is discarded with dockerd's warning."""
        bare = honoured.HostLimits(cgroup_v2=True)
        self.assertEqual(
            honoured.check_update({"Memory": 1 << 30, "PidsLimit": 5}, bare), ([], set())
        )
        for key, value in (
            ("Ulimits", [{"Name": "nofile"}]),
            ("Devices", [{}]),
            ("CgroupParent", "x"),
        ):
            with self.assertRaises(InvalidParameter) as cm:
                honoured.check_update({key: value}, bare)
            self.assertIn(f"{key} cannot be changed by docker update", str(cm.exception))
        warnings, skip = honoured.check_update({"BlkioWeight": 300, "OomKillDisable": True}, bare)
        self.assertEqual(skip, {"BlkioWeight", "OomKillDisable"})
        self.assertEqual(len(warnings), 2)
        with self.assertRaises(InvalidParameter) as cm:
            honoured.check_update({"CpuRealtimeRuntime": 1000}, bare)
        self.assertIn("does not support cgroup cpu real-time runtime", str(cm.exception))
