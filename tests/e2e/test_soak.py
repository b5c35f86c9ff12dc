"""The soak in CI (issue 18): about a minute of 16 clients looping over
create/start/exec/logs/stop/rm with 200 idle API connections open, against a real pyd; no
request fails and the daemon's descriptors, threads, RSS and database stay within the bounds
of tests/helpers/soak.py. The 20-minute run is `python -m bench soak`.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.soak import check, run_soak

pytestmark = pytest.mark.e2e


def test_soak(pyd: PydDaemon) -> None:
    """45 s of load after a 15 s warm-up: no failed request, no growth past the bounds, and
    nothing left behind (no container, no exec directory)."""
    assert pyd.proc is not None
    result = run_soak(pyd.sock, pyd.proc.pid, pyd.data_root, 45, warmup=15)
    print(result.report())
    assert result.cycles > 0
    assert check(result) == [], result.report()
    status, _, body = pyd.request("GET", "/containers/json?all=1")
    assert (status, json.loads(body)) == (200, [])
    exec_dir = os.path.join(pyd.exec_root, "exec")
    assert not os.path.isdir(exec_dir) or os.listdir(exec_dir) == []
