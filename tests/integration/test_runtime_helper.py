"""tests.helpers.runtime's bare container leaves no cgroup behind, even when the test fails.

Its cgroup is two levels (parent/id, as pyd's own): both are the container's, and its cleanup
removes both in every hierarchy, whatever the test did.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers.runtime import BareContainer

pytestmark = pytest.mark.integration


class Failed(Exception):
    """What the test body raised."""


def _run_and_fail(c: BareContainer) -> list[str]:
    """The fixtures' pattern (create, start, body, cleanup in finally), with a body that fails
    while the container runs; returns the cgroup directories that existed then."""
    made: list[str] = []
    with pytest.raises(Failed):
        try:
            c.create()
            c.start()
            made = [p for p in c.cgroup_dirs() if os.path.isdir(p)]
            raise Failed
        finally:
            c.cleanup()
    return made


def test_cleanup_removes_both_levels_after_a_failed_test() -> None:
    c = BareContainer(["sleep", "60"])
    leaf, parent = c.cgroup.strip("/"), c.cgroup.strip("/").rsplit("/", 1)[0]
    made = _run_and_fail(c)
    assert any(p.endswith("/" + leaf) for p in made), made  # the check below can fail
    assert any(p.endswith("/" + parent) for p in made), made
    assert [p for p in c.cgroup_dirs() if os.path.lexists(p)] == []
    assert not c.base.exists()


def test_parent_is_the_containers_own() -> None:
    """Another container's cleanup never removes (nor races for) this one's parent."""
    a, b = BareContainer(["sleep", "60"]), BareContainer(["sleep", "60"])
    try:
        b.create()
        b.start()
        assert a.cgroup.rsplit("/", 1)[0] != b.cgroup.rsplit("/", 1)[0]
        _run_and_fail(a)
        assert os.path.isdir(f"/sys/fs/cgroup/pids{b.cgroup}")
    finally:
        a.cleanup()
        b.cleanup()
    assert [p for p in a.cgroup_dirs() + b.cgroup_dirs() if os.path.lexists(p)] == []
