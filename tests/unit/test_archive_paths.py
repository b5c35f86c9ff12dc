"""Path resolution inside a container root (pyd.drivers.streams.archive) and ps parsing."""

from __future__ import annotations

import os
from pathlib import Path

from pyd.drivers.streams import archive
from pyd.engine.metrics import parse_ps


def _root(tmp_path: Path) -> str:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "tmp").mkdir()
    (r / "etc" / "hostname").write_text("inside\n")
    os.symlink("/etc", r / "tmp" / "abs")
    os.symlink("../" * 10 + "etc", r / "tmp" / "rel")
    os.symlink("loop2", r / "tmp" / "loop1")
    os.symlink("loop1", r / "tmp" / "loop2")
    return str(r)


class ScopedResolutionTests:
    """Symlinks are followed inside the root only (moby's FollowSymlinkInScope)."""

    def test_absolute_and_climbing_links_stay_inside(self, tmp_path: Path) -> None:
        """An absolute target restarts at the root; C{..} stops there."""
        root = _root(tmp_path)
        assert archive.scoped(root, "/tmp/abs/hostname") == "/etc/hostname"
        assert archive.scoped(root, "/tmp/rel/hostname") == "/etc/hostname"
        assert archive.scoped(root, "/../../etc") == "/etc"

    def test_last_element_not_followed_by_resolve(self, tmp_path: Path) -> None:
        """ResolvePath keeps the last element; stat reports the link and its scoped target."""
        root = _root(tmp_path)
        host, abs_path = archive.resolve(root, "tmp/abs")
        assert host == os.path.join(root, "tmp", "abs") and abs_path == "/tmp/abs"
        st = archive.stat_path(root, "/tmp/rel")
        assert st is not None
        assert st.mode & archive.GO_MODE_SYMLINK and st.link_target == "/etc"
        d = archive.stat_path(root, "/tmp")
        assert d is not None and d.mode & archive.GO_MODE_DIR and d.name == "tmp"

    def test_missing_and_loop(self, tmp_path: Path) -> None:
        """A missing path has no stat; a loop is an error, not a hang."""
        root = _root(tmp_path)
        assert archive.stat_path(root, "/nope/x") is None
        try:
            archive.scoped(root, "/tmp/loop1/x")
        except archive.PathEscape:
            pass
        else:
            raise AssertionError("loop not detected")

    def test_tar_plan_and_extraction_dir(self, tmp_path: Path) -> None:
        """Directories archive their content under the requested name; files by their parent;
        an upload into a symlinked directory lands inside the root."""
        root = _root(tmp_path)
        assert archive.tar_plan(root, "/tmp/abs/hostname") == ("/etc", "hostname", "hostname")
        assert archive.tar_plan(root, "/etc/") == ("/etc", ".", "etc")
        assert archive.tar_plan(root, "/etc/.") == ("/etc", ".", ".")
        assert archive.extraction_dir(root, "/tmp/rel") == (os.path.join(root, "etc"), True, True)
        assert archive.extraction_dir(root, "/etc/hostname")[1:] == (True, False)

    def test_rfc3339(self) -> None:
        """Go's time format, UTC, trailing zeros dropped."""
        assert archive.rfc3339_nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
        assert archive.rfc3339_nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


class PsParseTests:
    """moby's parsePSOutput."""

    def test_filter_and_command_with_spaces(self) -> None:
        """Only the container's pids; the command keeps its spaces."""
        out = (
            "UID PID PPID C STIME TTY TIME CMD\n"
            "root 10 1 0 12:00 ? 00:00:00 sleep 300\n"
            "root 11 1 0 12:00 ? 00:00:00 other thing\n"
        )
        r = parse_ps(out, {10})
        assert r.titles[1] == "PID"
        assert r.processes == (("root", "10", "1", "0", "12:00", "?", "00:00:00", "sleep 300"),)
