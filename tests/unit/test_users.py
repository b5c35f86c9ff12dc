"""User and group resolution (pyd.engine.users): dockerd's rules, and the container's files as
hostile input (links out, devices, FIFOs, loops, huge or malformed files, a racing swap)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pyd.core.errors import InvalidParameter
from pyd.drivers.inroot import InRoot
from pyd.engine import users

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "bad:x:abc:1::/:/bin/sh\n"
    "huge:x:99999999999:1::/:/bin/sh\n"
    "short:x:5\n"
)
GROUP = "root:x:0:\ndaemon:x:1:app\nstaff:x:50:app,root\napp:x:1000:\nbadg:x:zz:\n"
HOST_PASSWD = "canary:x:4242:4242::/canary-home:/bin/sh\n"


def _root(tmp_path: Path, passwd: str = PASSWD, group: str = GROUP) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(passwd)
    (root / "etc" / "group").write_text(group)
    return root


def _host(tmp_path: Path) -> Path:
    """A host directory with a passwd the container must never see."""
    host = tmp_path / "hostetc"
    host.mkdir()
    (host / "passwd").write_text(HOST_PASSWD)
    (host / "group").write_text("canary:x:4242:\n")
    return host


class ResolutionRulesTests:
    """dockerd's rules: names, numbers, groups, GroupAdd, defaults."""

    def test_names_and_numbers(self, tmp_path: Path) -> None:
        root = str(_root(tmp_path))
        assert users.resolve_user(root, "app") == (1000, 1000, (1000, 1, 50), "/home/app")
        assert users.resolve_user(root, "1000") == (1000, 1000, (1000, 1, 50), "/home/app")
        assert users.resolve_user(root, "") == (0, 0, (0, 50), "/root")
        assert users.resolve_user(root, "4321") == (4321, 0, (0,), "/")

    def test_groups(self, tmp_path: Path) -> None:
        root = str(_root(tmp_path))
        assert users.resolve_user(root, "app:staff") == (1000, 50, (50,), "/home/app")
        assert users.resolve_user(root, "app:77") == (1000, 77, (77,), "/home/app")
        assert users.resolve_user(root, "daemon", ["staff", "9"]) == (1, 1, (1, 50, 9), "/usr/sbin")

    def test_unknown_names_are_dockerds_400s(self, tmp_path: Path) -> None:
        root = str(_root(tmp_path))
        with pytest.raises(
            InvalidParameter,
            match=r"^unable to find user nope: no matching entries in passwd file$",
        ):
            users.resolve_user(root, "nope")
        with pytest.raises(
            InvalidParameter, match=r"^unable to find group nog: no matching entries in group file$"
        ):
            users.resolve_user(root, "app:nog")
        with pytest.raises(
            InvalidParameter, match=r"^Unable to find group nog: no matching entries in group file$"
        ):
            users.resolve_user(root, "app", ["nog"])

    def test_out_of_range_ids(self, tmp_path: Path) -> None:
        root = str(_root(tmp_path))
        with pytest.raises(InvalidParameter, match="uids and gids must be in range 0-2147483647"):
            users.resolve_user(root, "2147483648")
        with pytest.raises(InvalidParameter, match="uids and gids must be in range"):
            users.resolve_user(root, "app:99999999999")

    def test_malformed_lines_are_skipped_not_guessed(self, tmp_path: Path) -> None:
        """A non-numeric or out-of-range id never becomes uid 0 (nor a Python error)."""
        root = str(_root(tmp_path))
        for name in ("bad", "huge", "short"):
            with pytest.raises(InvalidParameter, match=f"unable to find user {name}:"):
                users.resolve_user(root, name)
        with pytest.raises(InvalidParameter, match="unable to find group badg:"):
            users.resolve_user(root, "app:badg")

    def test_missing_files_numeric_still_works(self, tmp_path: Path) -> None:
        root = tmp_path / "empty"
        root.mkdir()
        assert users.resolve_user(str(root), "12:34") == (12, 34, (34,), "/")
        with pytest.raises(
            InvalidParameter, match=r"^unable to find user app: no matching entries in passwd file$"
        ):
            users.resolve_user(str(root), "app")

    def test_root_that_cannot_be_opened_is_a_plain_error(self, tmp_path: Path) -> None:
        with pytest.raises(Exception) as e:
            users.resolve_user(str(tmp_path / "gone"), "app")
        assert str(e.value) == "cannot open the container's root filesystem"


class HostileFilesTests:
    """The container's /etc is attacker-controlled: nothing reaches the host, nothing blocks."""

    @pytest.mark.parametrize(
        "shape", ["abs-dir", "climb-dir", "abs-file", "climb-file", "magic", "via-missing"]
    )
    def test_links_out_resolve_inside(self, tmp_path: Path, shape: str) -> None:
        """Links towards the host's passwd resolve inside the root: the host's user is unknown."""
        root = _root(tmp_path)
        host = _host(tmp_path)
        hostrel = str(host).lstrip("/")
        etc = root / "etc"
        if shape.endswith("-dir"):
            for f in etc.iterdir():
                f.unlink()
            etc.rmdir()
            target = str(host) if shape == "abs-dir" else "../" * 20 + hostrel
            os.symlink(target, etc)
        elif shape.endswith("-file"):
            (etc / "passwd").unlink()
            target = (
                str(host / "passwd") if shape == "abs-file" else "../" * 20 + hostrel + "/passwd"
            )
            os.symlink(target, etc / "passwd")
        elif shape == "magic":
            (etc / "passwd").unlink()
            os.symlink(f"/proc/self/root{host}/passwd", etc / "passwd")
        else:
            (etc / "passwd").unlink()
            os.symlink("missing/../../../../../../" + hostrel + "/passwd", etc / "passwd")
        with pytest.raises(InvalidParameter, match="unable to find user canary"):
            users.resolve_user(str(root), "canary")

    def test_a_link_inside_the_root_is_followed(self, tmp_path: Path) -> None:
        root = _root(tmp_path)
        (root / "real").mkdir()
        (root / "real" / "passwd").write_text("inside:x:7:7::/in:/bin/sh\n")
        (root / "etc" / "passwd").unlink()
        os.symlink("/real/passwd", root / "etc" / "passwd")
        assert users.resolve_user(str(root), "inside") == (7, 7, (7,), "/in")

    @pytest.mark.parametrize("kind", ["block", "char", "fifo"])
    def test_special_files_are_never_read(self, tmp_path: Path, kind: str) -> None:
        """A device node or FIFO at /etc/passwd: refused promptly, with a plain reason; a
        numeric user still works (as with a missing file)."""
        root = _root(tmp_path)
        p = root / "etc" / "passwd"
        p.unlink()
        if kind == "fifo":
            os.mkfifo(p)
        else:
            # block 7:0 (a loop device), char 1:5 (/dev/zero): reading either would be the bug
            mode = stat.S_IFBLK if kind == "block" else stat.S_IFCHR
            os.mknod(p, 0o644 | mode, os.makedev(7, 0) if kind == "block" else os.makedev(1, 5))
        with pytest.raises(InvalidParameter) as e:
            users.resolve_user(str(root), "app")
        assert str(e.value) == (
            "unable to find user app: no matching entries in passwd file "
            "(/etc/passwd is not a regular file)"
        )
        assert users.resolve_user(str(root), "1000")[:2] == (1000, 0)

    def test_loops_and_huge_files(self, tmp_path: Path) -> None:
        root = _root(tmp_path)
        (root / "etc" / "passwd").unlink()
        os.symlink("/etc/passwd2", root / "etc" / "passwd")
        os.symlink("/etc/passwd", root / "etc" / "passwd2")
        with pytest.raises(InvalidParameter, match=r"\(/etc/passwd is a loop of symbolic links\)"):
            users.resolve_user(str(root), "app")
        with open(root / "etc" / "group", "w") as f:
            f.truncate(users.ACCOUNTS_LIMIT + 1)
        with pytest.raises(InvalidParameter, match=r"\(/etc/group is larger than 4 MiB\)"):
            users.resolve_user(str(root), "0", ["staff"])

    def test_an_open_inroot_is_accepted(self, tmp_path: Path) -> None:
        root = _root(tmp_path)
        with InRoot(str(root)) as r:
            assert users.resolve_user(r, "app")[0] == 1000

    def test_racing_etc_swap_never_reads_the_host(self, tmp_path: Path) -> None:
        """A running container flips /etc between its directory and links out (absolute and
        climbing), with renameat2(RENAME_EXCHANGE) in another process, while we resolve: every
        answer is the container's or 'unknown', never the host's canary user."""
        root = _root(tmp_path, passwd=PASSWD + "local:x:5:5::/:/bin/sh\n")
        host = _host(tmp_path)
        os.symlink(str(host), root / "abs")
        os.symlink("../" * 20 + str(host).lstrip("/"), root / "climb")
        swapper = subprocess.Popen([sys.executable, "-c", _SWAPPER, str(root)])
        try:
            outcomes = set()
            for _ in range(2000):
                for name in ("canary", "local"):
                    try:
                        outcomes.add(str(users.resolve_user(str(root), name)[0]))
                    except InvalidParameter:
                        outcomes.add("unknown")
        finally:
            swapper.kill()
            swapper.wait()
        assert "4242" not in outcomes
        assert outcomes <= {"unknown", "5"}


# Exchanges etc with abs, then with climb, forever (the test kills it).
_SWAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
while True:
    for other in (b"abs", b"climb"):
        for _ in range(2):
            if libc.renameat2(-100, b"etc", -100, other, 2) != 0:
                raise OSError(ctypes.get_errno(), "renameat2")
"""
