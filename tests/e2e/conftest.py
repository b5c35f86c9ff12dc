"""Fixtures shared by the end-to-end modules that run many tests against one daemon."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import load_busybox


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PydDaemon]:
    """One daemon with the busybox test image for the whole module (start-up is the slow part)."""
    d = PydDaemon(str(tmp_path_factory.mktemp("pyd")))
    try:
        d.start()
        load_busybox(d)
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def pyd(shared_daemon: PydDaemon) -> Iterator[PydDaemon]:
    """The shared daemon, running (a test may have killed it), with no containers, networks or
    volumes left over from the previous test."""
    if shared_daemon.proc is None or shared_daemon.proc.poll() is not None:
        shared_daemon.start()
    try:
        yield shared_daemon
    finally:
        if shared_daemon.proc is None or shared_daemon.proc.poll() is not None:
            shared_daemon.start()
        shared_daemon.remove_all_objects()
