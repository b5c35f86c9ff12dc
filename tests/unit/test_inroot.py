"""The path-safety layer (pyd.drivers.inroot): every attack shape stays inside the root."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from pyd.drivers import inroot


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root full of hostile links, and a host canary directory beside it."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.symlink(str(host), root / "abs")  # absolute: means the container's own path
    os.symlink("../" * 12 + str(host).lstrip("/"), root / "climb")
    os.symlink("missing/../../../" + str(host).lstrip("/"), root / "viamissing")
    os.symlink("/proc/self/root" + str(host), root / "magic")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.mkfifo(root / "fifo")
    return root, host


class InRootResolutionTests:
    """Paths and links resolve inside the root, by the kernel."""

    def test_links_out_do_not_reach_the_host(self, tmp_path: Path) -> None:
        """Absolute, climbing and missing/.. links resolve to container paths, never the host's."""
        root, host = _tree(tmp_path)
        with inroot.InRoot(str(root)) as r:
            for link in ("abs", "climb", "viamissing"):
                with pytest.raises(FileNotFoundError):
                    r.open(f"/{link}/secret")
                assert r.read_small(f"/{link}/secret") is None
            assert r.realpath("/abs/../etc/passwd") == "/etc/passwd"
        assert (host / "secret").read_text() == "host secret\n"

    def test_magic_links_refused(self, tmp_path: Path) -> None:
        """A /proc/self/root-style link is refused (ELOOP or missing), never followed to the host."""
        root, _ = _tree(tmp_path)
        with inroot.InRoot(str(root)) as r, pytest.raises(OSError) as e:
            r.open("/magic/secret")
        assert e.value.errno in (errno.ELOOP, errno.ENOENT, errno.EXDEV)

    def test_loop_is_eloop(self, tmp_path: Path) -> None:
        root, _ = _tree(tmp_path)
        with inroot.InRoot(str(root)) as r, pytest.raises(OSError) as e:
            r.open("/loop1")
        assert e.value.errno == errno.ELOOP

    def test_read_small_refuses_fifos_and_big_files(self, tmp_path: Path) -> None:
        """A FIFO is not read (and does not block); a file over the limit is EFBIG."""
        root, _ = _tree(tmp_path)
        with inroot.InRoot(str(root)) as r:
            assert r.read_small("/fifo") is None
            assert r.read_small("/etc/passwd") == b"root:x:0:0::/root:/bin/sh\n"
            with pytest.raises(OSError) as e:
                r.read_small("/etc/passwd", limit=4)
            assert e.value.errno == errno.EFBIG

    def test_read_small_refuses_devices(self, tmp_path: Path) -> None:
        """A character device at /etc/passwd is never opened for reading."""
        root, _ = _tree(tmp_path)
        os.unlink(root / "etc" / "passwd")
        os.mknod(root / "etc" / "passwd", 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero
        with inroot.InRoot(str(root)) as r:
            assert r.read_small("/etc/passwd") is None

    def test_read_small_never_opens_a_special_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A device or FIFO (also behind a link) is only ever reached as O_PATH: never opened."""
        root, _ = _tree(tmp_path)
        os.unlink(root / "etc" / "passwd")
        os.mknod(root / "etc" / "passwd", 0o644 | stat.S_IFCHR, os.makedev(1, 5))
        os.symlink("/fifo", root / "etc" / "group")
        opened: list[int] = []
        real_openat2, real_open = inroot.openat2, os.open

        def spy_openat2(dirfd: int, path: str, flags: int, *a: object, **k: object) -> int:
            opened.append(flags)
            return real_openat2(dirfd, path, flags, *a, **k)  # type: ignore[arg-type]  # a pass-through wrapper: the arguments are the wrapped call's

        def spy_open(path: str, flags: int, *a: object, **k: object) -> int:
            opened.append(flags)
            return real_open(path, flags, *a, **k)  # type: ignore[arg-type]  # a pass-through wrapper: the arguments are the wrapped call's

        monkeypatch.setattr(inroot, "openat2", spy_openat2)
        monkeypatch.setattr(os, "open", spy_open)
        with inroot.InRoot(str(root)) as r:
            opened.clear()
            assert r.read_small("/etc/passwd") is None
            assert r.read_small("/etc/group") is None
        assert opened and all(f & os.O_PATH for f in opened)


class InRootWritingTests:
    """Creating, making directories and removing never act outside the root."""

    def test_makedirs_through_links_stays_inside(self, tmp_path: Path) -> None:
        """mkdir -p through an absolute link creates inside the root, not on the host."""
        root, host = _tree(tmp_path)
        with inroot.InRoot(str(root)) as r:
            fd = r.makedirs("/abs/new/deeper", uid=1234, gid=1234)
            try:
                assert r.container_path(fd) == str(host) + "/new/deeper"
            finally:
                os.close(fd)
        assert not (host / "new").exists()
        assert (root / str(host).lstrip("/") / "new" / "deeper").is_dir()
        assert (root / str(host).lstrip("/") / "new").stat().st_uid == 1234

    def test_create_replaces_a_link_instead_of_following_it(self, tmp_path: Path) -> None:
        """Writing over a symlink to a host file replaces the link; the host file is untouched."""
        root, host = _tree(tmp_path)
        os.symlink(str(host / "secret"), root / "etc" / "shadow")
        with inroot.InRoot(str(root)) as r:
            fd = r.create("/etc/shadow", 0o600)
            os.write(fd, b"inside")
            os.close(fd)
            with pytest.raises(FileExistsError):
                r.create("/etc/shadow", replace=False)
        assert (host / "secret").read_text() == "host secret\n"
        assert (root / "etc" / "shadow").read_text() == "inside"

    def test_create_through_a_linked_parent_stays_inside(self, tmp_path: Path) -> None:
        root, host = _tree(tmp_path)
        with inroot.InRoot(str(root)) as r, pytest.raises(FileNotFoundError):
            r.create("/climb/x")  # the parent is the container's /<host path>, which is missing
        assert not (host / "x").exists()

    def test_remove_never_follows(self, tmp_path: Path) -> None:
        """Removing a link to a host directory removes the link only."""
        root, host = _tree(tmp_path)
        (root / "d").mkdir()
        os.symlink(str(host), root / "d" / "h")
        with inroot.InRoot(str(root)) as r:
            r.remove("/d")
            with pytest.raises(PermissionError):
                r.remove("/")
        assert (host / "secret").exists()
        assert not (root / "d").exists()


class MountByDescriptorTests:
    """A mount source opened in scope is mounted by its descriptor (needs root)."""

    @pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
    def test_clone_and_attach_in_private_namespace(self, tmp_path: Path) -> None:
        """clone_tree + attach_tree mount what the descriptor names, read-only when asked."""
        root, _ = _tree(tmp_path)
        (tmp_path / "target").mkdir()
        pid = os.fork()
        if pid == 0:  # the child works in a mount namespace of its own and reports by exit code
            code = 1
            try:
                inroot._libc.unshare(0x00020000)  # CLONE_NEWNS (os.unshare is 3.12+)
                inroot._libc.mount(None, b"/", None, 0x4000 | 0x40000, None)  # rprivate
                with inroot.InRoot(str(root)) as r:
                    src = r.open_dir("/etc")
                    tree = inroot.clone_tree(src, readonly=True)
                    tgt = os.open(str(tmp_path / "target"), os.O_PATH | os.O_DIRECTORY)
                    inroot.attach_tree(tree, tgt)
                    ok = (tmp_path / "target" / "passwd").exists()
                    try:
                        (tmp_path / "target" / "new").write_text("x")
                        ok = False
                    except OSError as e:
                        ok = ok and e.errno == errno.EROFS
                    code = 0 if ok else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not (tmp_path / "target" / "passwd").exists()  # the host's namespace is untouched


class CopyTreeTests:
    """copy_tree between two roots: links copied as links, the destination resolved in scope."""

    def test_copy_through_destination_link_stays_inside(self, tmp_path: Path) -> None:
        """COPY payload/ / with payload/evil/x, where the image has evil -> /root: the write lands
        in the image's /root, never the host's (issue 13, escape 4)."""
        src = tmp_path / "ctx"
        (src / "payload" / "evil").mkdir(parents=True)
        (src / "payload" / "evil" / "x").write_text("payload")
        os.symlink(str(tmp_path / "host"), src / "payload" / "link")
        (tmp_path / "host").mkdir()
        dst = tmp_path / "image"
        dst.mkdir()
        os.symlink(str(tmp_path / "host"), dst / "evil")
        with inroot.InRoot(str(src)) as s, inroot.InRoot(str(dst)) as d:
            n = inroot.copy_tree(s, "/payload", d, "/", owner=(0, 0))
        assert n == len("payload")
        assert os.listdir(tmp_path / "host") == []
        inside = dst / str(tmp_path / "host").lstrip("/") / "x"
        assert inside.read_text() == "payload"
        assert os.readlink(dst / "link") == str(tmp_path / "host")

    def test_source_links_are_not_followed(self, tmp_path: Path) -> None:
        """A context whose file is a link to a host file copies the link, not the host file."""
        (tmp_path / "host").mkdir()
        (tmp_path / "host" / "secret").write_text("s")
        src = tmp_path / "ctx"
        src.mkdir()
        os.symlink(str(tmp_path / "host" / "secret"), src / "s")
        os.symlink("../host", src / "up")
        dst = tmp_path / "image"
        dst.mkdir()
        with inroot.InRoot(str(src)) as s, inroot.InRoot(str(dst)) as d:
            assert inroot.copy_tree(s, "/", d, "/app") == 0
            with pytest.raises(FileNotFoundError):  # the top is followed in scope: missing
                inroot.copy_tree(s, "/up/secret", d, "/leak")
        assert os.readlink(dst / "app" / "s") == str(tmp_path / "host" / "secret")
        assert not (dst / "leak").exists()

    def test_specials_refused_unless_asked(self, tmp_path: Path) -> None:
        src = tmp_path / "ctx"
        src.mkdir()
        os.mkfifo(src / "fifo")
        dst = tmp_path / "image"
        dst.mkdir()
        with inroot.InRoot(str(src)) as s, inroot.InRoot(str(dst)) as d:
            with pytest.raises(inroot.SpecialFile):
                inroot.copy_tree(s, "/fifo", d, "/fifo")
            inroot.copy_tree(s, "/fifo", d, "/fifo", specials=True)
        assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)


class InRootBeneathTests:
    """C{beneath=True}: links that stay inside are followed, anything leaving fails with EXDEV."""

    def test_links_out_refused(self, tmp_path: Path) -> None:
        """Absolute and climbing links (and .. above the root) are refused, not contained."""
        root, host = _tree(tmp_path)
        (root / "d").mkdir()
        os.symlink("../etc", root / "d" / "up")
        with inroot.InRoot(str(root), beneath=True) as r:
            for path in ("abs", "abs/secret", "climb", "viamissing/x", "d/../../host"):
                with pytest.raises(OSError) as e:
                    r.open(path, os.O_PATH)
                assert e.value.errno in (errno.EXDEV, errno.ENOENT), path
            for path in ("abs", "climb"):
                with pytest.raises(OSError) as e:
                    r.open(path, os.O_PATH)
                assert e.value.errno == errno.EXDEV
            assert r.realpath("d/up/passwd") == "/etc/passwd"
        assert (host / "secret").read_text() == "host secret\n"
