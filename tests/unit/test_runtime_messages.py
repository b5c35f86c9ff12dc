"""Runtime errors as clients see them (pyd.drivers.runtime.conmon.scrub_host_paths)."""

from __future__ import annotations

from pyd.drivers.runtime.conmon import scrub_host_paths

ROOTS = {"/var/lib/pyd/exec": "<exec-root>", "/var/lib/pyd": "<data-root>"}


def test_daemon_roots_replaced_where_they_start_a_path() -> None:
    msg = "mount `/var/lib/pyd/exec/mounts/abc/0` to `etc`: error opening `/var/lib/pyd/x`"
    assert scrub_host_paths(msg, ROOTS) == (
        "mount `<exec-root>/mounts/abc/0` to `etc`: error opening `<data-root>/x`"
    )
    assert scrub_host_paths("at /var/lib/pyd: gone", ROOTS) == "at <data-root>: gone"


def test_other_paths_and_lookalikes_kept() -> None:
    msg = "open /var/lib/pyd2/f and /srv/x: No such file"
    assert scrub_host_paths(msg, ROOTS) == msg


def test_named_paths_first() -> None:
    msg = "mount `/var/lib/pyd/exec/mounts/abc/0` to `etc`"
    names = {"/var/lib/pyd/exec/mounts/abc/0": "/var/lib/pyd/volumes/v/_data/f"}
    assert scrub_host_paths(msg, ROOTS, names) == "mount `<data-root>/volumes/v/_data/f` to `etc`"
