"""`docker build` output compared line by line with dockerd's (issue 7).

Every case of L{tests.helpers.build_golden.CASES} runs against pyd with the real docker CLI; its
normalised transcript (stdout, stderr and exit status of each command, plus the stored image
config, `docker image inspect` and `docker history` of the result) must equal the golden
transcript captured from dockerd 20.10 in tests/data/build_golden/, after the documented
rewrites to what a current dockerd prints (L{tests.helpers.build_golden.NEWER_DOCKERD}).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests.helpers import build_golden as golden
from tests.helpers.daemon import PydDaemon

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PydDaemon]:
    """One pyd for all cases (each case starts from the base image alone)."""
    d = PydDaemon(str(tmp_path_factory.mktemp("pyd-golden")))
    try:
        d.start()
        golden.load_base(d.host)
        yield d
    finally:
        d.cleanup()


@pytest.mark.parametrize("case", golden.CASES, ids=[c.name for c in golden.CASES])
def test_build_matches_dockerd(daemon: PydDaemon, case: golden.Case) -> None:
    """The CLI prints, exits and finds the same as with dockerd (ids, times and temporary
    paths normalised), line by line."""
    expected = golden.apply_newer_dockerd(golden.golden_path(case).read_text())
    golden.reset(daemon.host)
    tmp = tempfile.mkdtemp(prefix="golden-", dir="/tmp")
    try:
        got = golden.run_case(daemon.host, case, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if got != expected:
        pytest.fail(
            f"pyd's transcript differs from dockerd's ({golden.golden_path(case)}):\n"
            + golden.diff(expected, got, f"/{case.name}")
            + "\n--- daemon log (tail) ---\n"
            + daemon.log()[-3000:]
        )
