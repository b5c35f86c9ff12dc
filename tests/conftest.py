"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.daemon import PydDaemon


@pytest.fixture
def pyd_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PydDaemon]:
    """A started pyd on a temporary socket and data root; stopped and removed afterwards."""
    d = PydDaemon(str(tmp_path_factory.mktemp("pyd")))
    try:
        d.start()
        yield d
    finally:
        d.cleanup()
