"""Crash consistency (CI part of the harness in tests/helpers/crash.py): the daemon is SIGKILLed
in the middle of each operation at a seeded random point, restarted on the same data root, and
every invariant must hold; the interrupted operation must then succeed. The long mode is
`python -m bench crash --iterations N --seed S`.

C{PYD_CRASH_SEED} picks another seed (a failure names the seed and the kill point).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.helpers.crash import OPERATIONS, CrashRig, Operation, staging_over
from tests.helpers.fsusage import tree_bytes

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("PYD_CRASH_SEED", "18"))
MIB = 1 << 20


@pytest.fixture(scope="module")
def rig() -> Iterator[CrashRig]:
    r = CrashRig(SEED, load_mib=200)
    try:
        r.start()
        yield r
    finally:
        r.close()


def _images(rig: CrashRig) -> set[str]:
    status, _, body = rig.daemon.request("GET", "/images/json")
    assert status == 200
    return {t for img in json.loads(body) for t in img.get("RepoTags") or ()}


def test_load_killed_mid_extraction(rig: CrashRig) -> None:
    """A kill -9 in the middle of a 200 MiB `docker load` leaves no half image: nothing listed,
    no staging, the space reclaimed; the load then succeeds and the image is whole."""
    rig.docker("rmi", "-f", "crash/load:1", check=False)
    before = tree_bytes(rig.daemon.data_root)
    op = Operation(
        "load-mid",
        OPERATIONS["load"].pre,
        OPERATIONS["load"].argv,
        trigger=lambda r: staging_over(r, 100 * MIB),
        after_restart=lambda r: [
            f"{t} listed after the kill" for t in _images(r) & {"crash/load:1"}
        ],
    )
    out = rig.iteration(op)
    assert not out.finished_before_kill, "the load ended before the kill"
    assert out.violations_after_restart == [], out.violations_after_restart
    assert out.repeat_error == "", out.repeat_error
    assert out.violations_after_repeat == [], out.violations_after_repeat
    assert "crash/load:1" in _images(rig)
    # The kill's leftovers are gone: after removing the image again, the data root is back
    # to within 16 MiB of where it started.
    rig.docker("rmi", "crash/load:1")
    assert tree_bytes(rig.daemon.data_root) - before < 16 * MIB


@pytest.mark.parametrize("name", [n for n in OPERATIONS if n != "load"])
def test_operation_killed(rig: CrashRig, name: str) -> None:
    """SIGKILL at a seeded random point of the operation; the invariants hold after the
    restart and after the repeat, which succeeds."""
    out = rig.iteration(OPERATIONS[name])
    where = f"seed {SEED}, {name} killed {out.delay:.2f}s in"
    assert out.violations_after_restart == [], (where, out.violations_after_restart)
    assert out.repeat_error == "", (where, out.repeat_error)
    assert out.violations_after_repeat == [], (where, out.violations_after_repeat)
