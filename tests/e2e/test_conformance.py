"""pyd against dockerd's recorded answers: the differential conformance suite (issue 15).

Every scenario of L{tests.conformance.scenarios.SCENARIOS} runs against pyd with the real docker
CLI and raw API requests; its normalised transcript must equal the one recorded from dockerd in
tests/data/conformance/ (after L{tests.conformance.runner.NEWER_DOCKERD}'s rewrites to what a
current dockerd answers, and L{tests.conformance.runner.PYD_DELIBERATE}'s). Re-record with
C{make conformance-record} where Debian's docker.io is installed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest

from tests.conformance import __main__ as conformance
from tests.conformance import runner
from tests.conformance.scenarios import KNOWN_DIFFERENCES, SCENARIOS, Scenario
from tests.helpers import build_golden
from tests.helpers.daemon import PydDaemon

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PydDaemon]:
    """One pyd for all scenarios (each starts with no containers, user networks or volumes)."""
    d = PydDaemon(str(tmp_path_factory.mktemp("pyd-conformance")))
    try:
        d.start()
        build_golden.load_base(d.host)
        yield d
    finally:
        d.cleanup()


def _params() -> list[object]:
    out: list[object] = []
    for s in SCENARIOS:
        marks = []
        if s.name in KNOWN_DIFFERENCES:
            marks.append(pytest.mark.xfail(reason=KNOWN_DIFFERENCES[s.name], strict=True))
        out.append(pytest.param(s, id=s.name, marks=marks))
    return out


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    """One registry on loopback for the scenarios that push and pull (its address)."""
    stops: list[Callable[[], None]] = []
    try:
        yield conformance.start_registry(stops)
    finally:
        for stop in stops:
            stop()


@pytest.mark.parametrize("scenario", _params())
def test_pyd_answers_as_dockerd(
    daemon: PydDaemon, scenario: Scenario, request: pytest.FixtureRequest
) -> None:
    """What the client sees from pyd equals what it saw from dockerd, step by step."""
    expected = runner.apply_newer_dockerd(conformance.golden_path(scenario).read_text())
    address = request.getfixturevalue("registry") if scenario.registry else ""
    tmp = tempfile.mkdtemp(prefix="conform-", dir="/tmp")
    try:
        runner.reset(daemon.host, tmp)
        got = runner.run_scenario(daemon.host, scenario, tmp, registry=address)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if got != expected:
        pytest.fail(
            f"pyd answers otherwise than dockerd ({conformance.golden_path(scenario)}):\n"
            + build_golden.diff(expected, got, f"/{scenario.name}")
            + "\n--- daemon log (tail) ---\n"
            + daemon.log()[-3000:]
        )


def test_every_scenario_has_a_recording() -> None:
    """A scenario without dockerd's answers would compare with nothing."""
    missing = [s.name for s in SCENARIOS if not conformance.golden_path(s).exists()]
    assert not missing, f"record them: make conformance-record ({missing})"
