"""Context extraction, source resolution and copy semantics (real files in a temp dir)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.builder import copier, fs
from tests.unit.builder.helpers import make_tar


class FsTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-build-")
        self.addCleanup(fs.remove_tree, self.tmp)

    def path(self, *p: str) -> str:
        return os.path.join(self.tmp, *p)


class ExtractContextTests(FsTestCase):
    """L{fs.extract_context}."""

    def test_files_dirs_symlinks(self) -> None:
        """Regular files keep their modes; directories and symlinks are created."""
        ctx = self.path("ctx")
        os.mkdir(ctx)
        n = fs.extract_context(make_tar({"a.sh": "x", "d/": b"", "d/b": "bb", "l": "->/etc"}), ctx)
        self.assertEqual(n, 3)
        self.assertEqual(stat.S_IMODE(os.stat(self.path("ctx", "a.sh")).st_mode), 0o755)
        with open(self.path("ctx", "d", "b")) as f:
            self.assertEqual(f.read(), "bb")
        self.assertEqual(os.readlink(self.path("ctx", "l")), "/etc")

    def test_escaping_entries_refused(self) -> None:
        """Entries named with C{..} or an absolute path are refused."""
        for name in ("../evil", "/abs/evil", "a/../../evil"):
            ctx = self.path("c" + str(abs(hash(name))))
            os.mkdir(ctx)
            with self.assertRaises(fs.BuildFileError) as c:
                fs.extract_context(make_tar({name: "x"}), ctx)
            self.assertIn("outside of the context", str(c.exception))
            self.assertFalse(os.path.exists(self.path("evil")))

    def test_write_through_symlink_stays_inside(self) -> None:
        """A file written under a symlink of the same archive that leads out is refused, naming
        the entry; nothing reaches the host."""
        ctx = self.path("ctx")
        os.mkdir(ctx)
        target = self.path("outside")
        os.mkdir(target)
        with self.assertRaises(fs.BuildFileError) as c:
            fs.extract_context(make_tar({"link": "->" + target, "link/pwn": "x"}), ctx)
        self.assertIn(
            "entry 'link/pwn' is refused: its parent 'link' is a symbolic link", str(c.exception)
        )
        self.assertEqual(os.listdir(target), [])
        self.assertFalse(os.path.exists(os.path.join(ctx, target.lstrip("/"), "pwn")))

    def test_gzip_and_empty(self) -> None:
        """A gzip-compressed context works; an empty body is an empty context."""
        import gzip

        ctx = self.path("ctx")
        os.mkdir(ctx)
        raw = make_tar({"f": "1"}).getvalue()
        fs.extract_context(io.BytesIO(gzip.compress(raw)), ctx)
        self.assertTrue(os.path.exists(os.path.join(ctx, "f")))
        ctx2 = self.path("ctx2")
        os.mkdir(ctx2)
        self.assertEqual(fs.extract_context(io.BytesIO(b""), ctx2), 0)

    def test_hardlink_inside(self) -> None:
        """A hardlink to an earlier member is made; devices are skipped."""
        ctx = self.path("ctx")
        os.mkdir(ctx)
        hl = tarfile.TarInfo("h")
        hl.type = tarfile.LNKTYPE
        hl.linkname = "f"
        dev = tarfile.TarInfo("dev")
        dev.type = tarfile.CHRTYPE
        fs.extract_context(make_tar({"f": "1"}, [hl, dev]), ctx)
        self.assertEqual(
            os.stat(os.path.join(ctx, "h")).st_ino, os.stat(os.path.join(ctx, "f")).st_ino
        )
        self.assertFalse(os.path.exists(os.path.join(ctx, "dev")))


class DockerignoreTests(FsTestCase):
    """L{fs.apply_dockerignore}."""

    def test_removes_excluded(self) -> None:
        """Only .dockerignore and the Dockerfile go, each when excluded (dockerd's
        removeDockerfile); other files are the client's to filter."""
        ctx = self.path("ctx")
        os.mkdir(ctx)
        fs.extract_context(
            make_tar(
                {
                    ".dockerignore": "*.log\nsecret/\n!secret/ok\nDockerfile\n",
                    "Dockerfile": "FROM a",
                    "a.log": "",
                    "b.txt": "",
                    "secret/x": "",
                    "secret/ok": "",
                }
            ),
            ctx,
        )
        self.assertEqual(fs.apply_dockerignore(ctx, ("Dockerfile",)), ["Dockerfile"])
        left = sorted(
            os.path.relpath(os.path.join(d, f), ctx) for d, _, fl in os.walk(ctx) for f in fl
        )
        self.assertEqual(left, [".dockerignore", "a.log", "b.txt", "secret/ok", "secret/x"])

    def test_dockerignore_excluded_by_parent_rule(self) -> None:
        """C{*} with exceptions excludes .dockerignore and the Dockerfile; a pattern moby cannot
        compile removes nothing."""
        for ignore, removed in (
            ("*\n!keep\n", [".dockerignore", "Dockerfile"]),
            (".*\n", [".dockerignore"]),
            ("[\n*\n", []),
            ("!\n*\n", []),
        ):
            ctx = self.path("ctx" + str(len(ignore)) + ignore[0].replace("*", "s"))
            os.mkdir(ctx)
            fs.extract_context(make_tar({".dockerignore": ignore, "Dockerfile": "FROM a"}), ctx)
            self.assertEqual(fs.apply_dockerignore(ctx, ("Dockerfile",)), removed, ignore)


class CopyTests(FsTestCase):
    """L{fs.resolve_sources} and L{copier.copy_into}."""

    def setUp(self) -> None:
        super().setUp()
        self.ctx = self.path("ctx")
        self.root = self.path("root")
        os.mkdir(self.ctx)
        os.mkdir(self.root)
        fs.extract_context(
            make_tar(
                {
                    "a.txt": "A",
                    "b.txt": "B",
                    "dir/": b"",
                    "dir/c": "C",
                    "dir/sub/": b"",
                    "dir/sub/d": "D",
                    "run.sh": "#!",
                }
            ),
            self.ctx,
        )

    def copy(self, srcs: list[str], dest: str, workdir: str = "/", **kw: object) -> None:
        sources = fs.resolve_sources(self.ctx, srcs, "COPY")
        multi = any(c in "".join(srcs) for c in "*?[")
        copier.copy_into(self.root, sources, dest, workdir, copier.CopyOptions(**kw), "COPY", multi)  # type: ignore[arg-type]  # **kw holds CopyOptions' fields of mixed types

    def read(self, p: str) -> str:
        with open(os.path.join(self.root, p.lstrip("/"))) as f:
            return f.read()

    def test_file_to_path_and_dir(self) -> None:
        """A file onto a new path is renamed; onto C{dir/} it goes inside."""
        self.copy(["a.txt"], "/x")
        self.assertEqual(self.read("/x"), "A")
        self.copy(["a.txt"], "/d/")
        self.assertEqual(self.read("/d/a.txt"), "A")
        self.copy(["b.txt"], "/d")  # existing directory
        self.assertEqual(self.read("/d/b.txt"), "B")

    def test_directory_contents(self) -> None:
        """A directory's contents are copied, not the directory itself."""
        self.copy(["dir"], "/app")
        self.assertEqual(self.read("/app/c"), "C")
        self.assertEqual(self.read("/app/sub/d"), "D")

    def test_relative_to_workdir(self) -> None:
        """A relative destination is joined to WORKDIR."""
        self.copy(["a.txt"], "./", workdir="/srv")
        self.assertEqual(self.read("/srv/a.txt"), "A")

    def test_globs(self) -> None:
        """Wildcards match in the context; several sources need a directory destination."""
        self.copy(["*.txt"], "/g/")
        self.assertEqual(sorted(os.listdir(self.path("root", "g"))), ["a.txt", "b.txt"])
        with self.assertRaises(fs.BuildFileError) as c:
            self.copy(["*.txt"], "/g2")
        self.assertIn("must be a directory and end with a /", str(c.exception))

    def test_outside_context(self) -> None:
        """C{../x} is refused; a missing file has dockerd's message."""
        with self.assertRaises(fs.BuildFileError) as c:
            fs.resolve_sources(self.ctx, ["../etc/passwd"], "COPY")
        self.assertIn("forbidden path outside the build context", str(c.exception))
        with self.assertRaises(fs.BuildFileError) as c:
            fs.resolve_sources(self.ctx, ["nope"], "COPY")
        self.assertIn(
            "file not found in build context or excluded by .dockerignore", str(c.exception)
        )

    def test_owner_and_mode(self) -> None:
        """Copied files are 0:0 by default, C{--chown} and C{--chmod} apply, modes are kept."""
        self.copy(["run.sh"], "/bin/", owner=(1000, 1001))
        st = os.stat(self.path("root", "bin", "run.sh"))
        self.assertEqual((st.st_uid, st.st_gid), (1000, 1001))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o755)
        self.copy(["a.txt"], "/m", mode=0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.path("root", "m")).st_mode), 0o600)

    def test_destination_symlink_stays_in_root(self) -> None:
        """A destination reached through an absolute symlink stays inside the root."""
        outside = self.path("outside")
        os.mkdir(outside)
        os.symlink(outside, self.path("root", "esc"))
        self.copy(["a.txt"], "/esc/")
        self.assertEqual(os.listdir(outside), [])
        self.assertEqual(self.read(outside + "/a.txt"), "A")

    def test_file_over_directory(self) -> None:
        """Replacing a directory with a file is an error."""
        os.makedirs(self.path("root", "app", "c"))
        with self.assertRaises(fs.BuildFileError) as c:
            self.copy(["dir"], "/app")
        self.assertIn("cannot replace to directory", str(c.exception))

    def test_unpack_archive(self) -> None:
        """ADD unpacks a local tar archive into the destination."""
        with open(os.path.join(self.ctx, "t.tar"), "wb") as f:
            f.write(make_tar({"in/f": "F"}).getvalue())
        sources = fs.resolve_sources(self.ctx, ["t.tar"], "ADD")
        copier.copy_into(self.root, sources, "/u", "/", copier.CopyOptions(unpack=True), "ADD")
        self.assertEqual(self.read("/u/in/f"), "F")

    def test_chown_names(self) -> None:
        """Names resolve through the root's /etc/passwd and /etc/group."""
        os.makedirs(self.path("root", "etc"))
        with open(self.path("root", "etc", "passwd"), "w") as f:
            f.write("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        with open(self.path("root", "etc", "group"), "w") as f:
            f.write("root:x:0:\nstaff:x:50:\n")
        self.assertEqual(fs.parse_chown("app", self.root), (1000, 1000))
        self.assertEqual(fs.parse_chown("app:staff", self.root), (1000, 50))
        self.assertEqual(fs.parse_chown("5:6", self.root), (5, 6))
        self.assertRaises(fs.BuildFileError, fs.parse_chown, "ghost", self.root)

    def test_hash_changes_with_content(self) -> None:
        """The source digest changes with content and mode but not with mtime."""
        srcs = fs.resolve_sources(self.ctx, ["dir"], "COPY")
        h1 = fs.hash_sources(srcs)
        os.utime(os.path.join(self.ctx, "dir", "c"), (1, 1))
        self.assertEqual(fs.hash_sources(srcs), h1)
        with open(os.path.join(self.ctx, "dir", "c"), "w") as f:
            f.write("changed")
        self.assertNotEqual(fs.hash_sources(srcs), h1)


class TruncatedTarTests(FsTestCase):
    """The docker CLI's context tar may end without padding or end blocks."""

    def test_unpadded_end(self) -> None:
        """A tar ending right after the last member's data is read completely."""
        raw = make_tar({"a": "1", ".dockerignore": "x" * 47}).getvalue()
        # Cut after the last member's 47 data bytes (drop padding and end blocks).
        cut = raw[: 512 + 512 + 512 + 47]
        ctx = self.path("ctx")
        os.mkdir(ctx)
        fs.extract_context(io.BytesIO(cut), ctx)
        with open(os.path.join(ctx, ".dockerignore")) as f:
            self.assertEqual(f.read(), "x" * 47)

    def test_truncated_member(self) -> None:
        """A member whose data is cut short is an error."""
        raw = make_tar({"a": "y" * 100}).getvalue()
        ctx = self.path("ctx")
        os.mkdir(ctx)
        self.assertRaises(fs.BuildFileError, fs.extract_context, io.BytesIO(raw[: 512 + 50]), ctx)
