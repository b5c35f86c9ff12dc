"""pyd.drivers.streams against real conmon + crun (a bare busybox container made in the test).

The drivers run under a real reactor in a child process (tests/helpers/stream_probe.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.helpers.daemon import REPO
from tests.helpers.runtime import BareContainer

pytestmark = pytest.mark.integration


def _probe(scenario: str, c: BareContainer) -> dict:
    cfg = {
        "attach": c.attach_path,
        "bundle": str(c.bundle),
        "crun_root": str(c.crun_root),
        "id": c.id,
        "base": str(c.base),
    }
    r = subprocess.run(
        [sys.executable, "-m", "tests.helpers.stream_probe", scenario, json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(REPO),
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def reader() -> Iterator[BareContainer]:
    c = BareContainer(
        [
            "sh",
            "-c",
            'while read l; do echo "in:${#l}"; done; echo closed >&2; sleep 0.5; echo bye',
        ],
        stdin=True,
    )
    try:
        c.create()
        c.start()
        yield c
    finally:
        c.cleanup()


@pytest.fixture
def sleeper() -> Iterator[BareContainer]:
    c = BareContainer(["sleep", "60"])
    try:
        c.create()
        c.start()
        yield c
    finally:
        c.cleanup()


class AttachSocketTests:
    """The SEQPACKET client moves stdin in and stdout/stderr out, and half-closes stdin."""

    def test_stdin_roundtrip_and_half_close(self, reader: BareContainer) -> None:
        """Lines reach the container (a 70 kB one split into packets conmon accepts); the
        half-close ends its stdin; output written afterwards still arrives; stderr is pipe 3."""
        out = _probe("attach_stdin", reader)
        assert out == {"stdout": "in:8\nin:70000\nbye\n", "stderr": "closed\n"}
        assert reader.exit_code() == 0


class ConmonExecTests:
    """Exec sessions through conmon's exec mode."""

    def test_exec_sessions(self, sleeper: BareContainer) -> None:
        """Attached exec with stdin and both streams, a missing executable, a TTY exec with
        env/cwd/user, and a detached exec all behave and report their exit codes."""
        out = _probe("exec", sleeper)
        assert out["e1"]["stdout"] == "got hello-exec\n"
        assert out["e1"]["stderr"] == "oops\n"
        assert out["e1"]["code"] == 6
        assert out["e1"]["pid"] > 0
        assert "executable file `/bin/nonexistent` not found" in out["e2"]
        assert out["e3"] == {"out": "tty\r\nbar\r\n/tmp\r\n1000\r\n", "code": 3}
        assert out["e4"] == {"code": 4}
