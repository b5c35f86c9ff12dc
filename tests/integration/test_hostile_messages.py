"""Every refusal of a hostile layer names the entry or the rule, and shows no internals.

The hostile archives of the suite (tests/e2e/test_archive_escapes.py, test_attack_content.py, the
layer cases of test_image_storage.py) are fed here to the refusal path they reach in the daemon:
the untar helper, run exactly as the daemon spawns it (the same isolated command line, chrooted
into the staging directory, the layer on stdin), whose last stderr line the image store reports
as C{failed to extract layer: <line>} (pyd/engine/images/store.py). Each message must name the
entry (when an entry is at fault) and contain no Python exception class, no errno text in
Python's form and no host path (the staging directory, the temporary directory). An archive
that is not refused must have stayed inside its root (root; the chroot is real).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from pyd.drivers import sealed
from tests.helpers.hostile import CONTAINED, LAYER_RULES, REFUSED
from tests.helpers.leaks import leaks

pytestmark = pytest.mark.integration


def _untar(dest: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    """The helper as L{pyd.drivers.storage.layers.HelperExtractor} spawns it."""
    dest.mkdir(parents=True, exist_ok=True)
    argv = sealed.helper_argv("pyd.drivers.storage.untar", str(dest))
    return subprocess.run(argv, input=data, capture_output=True, timeout=60)


def _message(result: subprocess.CompletedProcess[bytes]) -> str:
    """What a client reads: the store's prefix and the helper's last stderr line."""
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    return "failed to extract layer: " + (
        lines[-1] if lines else f"untar exited {result.returncode}"
    )


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusal_messages(case: str, tmp_path: Path) -> None:
    """The hostile layer is refused with a message naming its entry, without internals."""
    data, entry = REFUSED[case]
    dest = tmp_path / "staging" / "diff"
    result = _untar(dest, data)
    assert result.returncode == 1, (case, result)
    message = _message(result)
    assert "Traceback" not in result.stderr.decode("utf-8", "replace"), (case, result.stderr)
    found = leaks(message, [str(tmp_path), str(dest), tempfile.gettempdir() + "/"])
    assert found == [], (case, message, found)
    if entry is not None:
        assert entry in message, (case, message)
    assert LAYER_RULES[case] in message, (case, message)


def test_every_case_has_a_rule() -> None:
    """Each refused case states a known rule (a new case needs its expected text)."""
    assert set(LAYER_RULES) == set(REFUSED)


@pytest.mark.parametrize("case", sorted(CONTAINED))
def test_contained(case: str, tmp_path: Path) -> None:
    """What is not refused stayed under the root: nothing appeared outside it."""
    before = set(os.listdir("/etc"))
    dest = tmp_path / "staging" / "diff"
    result = _untar(dest, CONTAINED[case])
    assert set(os.listdir("/etc")) == before, case
    outside = list((tmp_path / "staging").iterdir())
    assert outside == [dest], (case, outside)
    if result.returncode != 0:
        message = _message(result)
        assert leaks(message, [str(tmp_path)]) == [], (case, message)
