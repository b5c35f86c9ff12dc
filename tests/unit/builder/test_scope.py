"""The build's path-safety rules (issue 13: 2, 3, 4, 5, 10): every build input and every
COPY/ADD/WORKDIR write is resolved inside its root, whatever links the context or the image hold.

Real files in a temp dir, as root. "Outside" is a directory beside the roots standing for the
host: each test plants the links an attacker would (C{a -> missing/../evil}, C{evil -> <outside>},
absolute and relative) and asserts the outside tree is byte-for-byte unchanged.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.builder import copier, fs
from pyd.engine.builder.parser import DockerfileError, parse, parse_trigger
from tests.unit.builder.helpers import make_tar


def snapshot(top: str) -> dict[str, tuple[int, int, int, int, bytes]]:
    """Every entry under C{top}: (mode, uid, gid, mtime_ns, content or link target)."""
    out = {}
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                data = os.readlink(p).encode()
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    data = f.read()
            else:
                data = b""
            out[os.path.relpath(p, top)] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, data)
    st = os.lstat(top)
    out["."] = (st.st_mode, st.st_uid, st.st_gid, 0, b"")
    return out


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    buf.seek(0)
    return buf


def member(name: str, kind: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    for k, v in kw.items():
        setattr(info, k, v)
    return info


class ScopeTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-scope-")
        self.addCleanup(fs.remove_tree, self.tmp)
        self.outside = os.path.join(self.tmp, "outside")
        os.makedirs(os.path.join(self.outside, "sub"))
        with open(os.path.join(self.outside, "secret"), "w") as f:
            f.write("HOST-SECRET first line\n")
        with open(os.path.join(self.outside, "passwd"), "w") as f:
            f.write("hostonly:x:4242:4343::/:/bin/sh\n")
        with open(os.path.join(self.outside, "group"), "w") as f:
            f.write("hostgrp:x:4545:\n")
        os.chmod(os.path.join(self.outside, "sub"), 0o700)
        self.before = snapshot(self.outside)
        self.ctx = os.path.join(self.tmp, "ctx")
        self.root = os.path.join(self.tmp, "root")
        os.mkdir(self.ctx)
        os.mkdir(self.root)

    def assertOutsideUntouched(self) -> None:
        self.assertEqual(snapshot(self.outside), self.before)

    def links(self, top: str) -> None:
        """The issue's pair: C{a -> missing/../evil} and C{evil -> <outside>} (absolute), plus
        C{rel -> ../../...<outside>} (relative, climbing)."""
        os.symlink("missing/../evil", os.path.join(top, "a"))
        os.symlink(self.outside, os.path.join(top, "evil"))
        os.symlink("../" * 12 + self.outside.lstrip("/"), os.path.join(top, "rel"))


class ContextExtractionTests(ScopeTestCase):
    """Context tar entries never write, chmod or delete through a link."""

    def extract(self, *members: tuple[tarfile.TarInfo, bytes | None]) -> None:
        links = [
            (member("a", tarfile.SYMTYPE, linkname="missing/../evil"), None),
            (member("evil", tarfile.SYMTYPE, linkname=self.outside), None),
            (member("rel", tarfile.SYMTYPE, linkname="../" * 12 + self.outside.lstrip("/")), None),
        ]
        try:
            fs.extract_context(tar_of(*links, *members), self.ctx)
        except fs.BuildFileError:
            pass  # refusing is fine too; what matters is the outside tree

    def test_file_through_links(self) -> None:
        """Files (one setuid) under C{a/}, C{evil/} and C{rel/} land inside the context."""
        for top in ("a", "evil", "rel"):
            self.extract((member(f"{top}/pwn", mode=0o4755), b"x"))
            self.assertOutsideUntouched()
            self.assertFalse(os.path.lexists(os.path.join(self.outside, "pwn")))

    def test_dir_chmod_through_link(self) -> None:
        """A directory entry C{a/sub} with mode 0777 does not chmod the outside C{sub}."""
        self.extract((member("a/sub", tarfile.DIRTYPE, mode=0o777), None))
        self.assertOutsideUntouched()

    def test_replace_dir_through_link(self) -> None:
        """A file entry over C{a/sub} (a directory outside) does not delete it."""
        self.extract((member("a/sub"), b"x"), (member("evil/secret"), b"over"))
        self.assertOutsideUntouched()

    def test_hardlink_to_outside(self) -> None:
        """A hardlink to C{a/secret} links nothing outside (the name is missing inside)."""
        self.extract((member("h", tarfile.LNKTYPE, linkname="a/secret"), None))
        self.assertOutsideUntouched()
        self.assertFalse(os.path.exists(os.path.join(self.ctx, "h")))


class InputTests(ScopeTestCase):
    """.dockerignore, -f and the outside-Dockerfile removal stay inside the context."""

    def test_dockerfile_through_link(self) -> None:
        """C{-f a/secret} does not read the outside file (no first line in any error)."""
        self.links(self.ctx)
        for name in ("a/secret", "evil/secret", "rel/secret"):
            with self.assertRaises(fs.BuildFileError) as c:
                fs.read_dockerfile(self.ctx, name)
            self.assertEqual(str(c.exception), f"Cannot locate specified Dockerfile: {name}")

    def test_dockerfile_link_inside(self) -> None:
        """A Dockerfile that is a link to another context file is read (in scope)."""
        with open(os.path.join(self.ctx, "real"), "w") as f:
            f.write("FROM x\n")
        os.symlink("/real", os.path.join(self.ctx, "Dockerfile"))
        self.assertEqual(fs.read_dockerfile(self.ctx, "Dockerfile"), b"FROM x\n")

    def test_remove_dockerfile_through_link(self) -> None:
        """C{dockerfile=a/.dockerfile.X} with C{a} leading outside deletes nothing there."""
        self.links(self.ctx)
        name = ".dockerfile.0123456789ab"
        with open(os.path.join(self.outside, name), "w") as f:
            f.write("FROM x\n")
        self.before = snapshot(self.outside)
        for top in ("a", "evil", "rel"):
            fs.remove_dockerfile(self.ctx, f"{top}/{name}")
        self.assertOutsideUntouched()

    def test_dockerignore_link_not_applied(self) -> None:
        """A C{.dockerignore} linking to an outside file is the context's file of that name
        (missing): no pattern from outside is applied."""
        with open(os.path.join(self.outside, "ignore"), "w") as f:
            f.write("keep\n")
        self.before = snapshot(self.outside)
        os.symlink(os.path.join(self.outside, "ignore"), os.path.join(self.ctx, ".dockerignore"))
        with open(os.path.join(self.ctx, "keep"), "w") as f:
            f.write("1")
        self.assertEqual(fs.apply_dockerignore(self.ctx, ("keep",)), [])
        self.assertTrue(os.path.exists(os.path.join(self.ctx, "keep")))
        self.assertOutsideUntouched()

    def test_dockerignore_removes_links_not_targets(self) -> None:
        """An excluded Dockerfile name that is a link out of the context is removed itself;
        its target stays."""
        self.links(self.ctx)
        with open(os.path.join(self.ctx, ".dockerignore"), "w") as f:
            f.write("evil\nrel\na\n")
        for name in ("a", "evil", "rel"):
            self.assertEqual(fs.apply_dockerignore(self.ctx, (name,)), [name])
        self.assertOutsideUntouched()


class SourceTests(ScopeTestCase):
    """COPY sources (context or another stage's root) never read through a link out of it."""

    def test_missing_component_link(self) -> None:
        """C{a/secret}, C{evil/secret}, C{rel/secret}: not found, whatever the tree."""
        for top in (self.ctx, self.root):
            self.links(top)
            for src in ("a/secret", "evil/secret", "rel/secret", "a", "evil/sub"):
                with self.assertRaises(fs.BuildFileError) as c:
                    fs.resolve_sources(top, [src], "COPY")
                self.assertIn("file not found", str(c.exception))

    def test_link_below_top_copied_as_link(self) -> None:
        """A directory holding C{evil} is copied with C{evil} as a link, not its target."""
        os.mkdir(os.path.join(self.ctx, "d"))
        self.links(os.path.join(self.ctx, "d"))
        sources = fs.resolve_sources(self.ctx, ["d"], "COPY")
        fs.hash_sources(sources)
        copier.copy_into(self.root, sources, "/out/", "/", copier.CopyOptions())
        self.assertEqual(os.readlink(os.path.join(self.root, "out", "evil")), self.outside)
        self.assertOutsideUntouched()

    def test_glob_through_links(self) -> None:
        """A wildcard under a link leading out matches nothing outside."""
        self.links(self.ctx)
        for pattern in ("evil/s*", "a/s*", "rel/*"):
            self.assertEqual(fs.resolve_sources(self.ctx, [pattern], "COPY"), [])
        with self.assertRaises(fs.BuildFileError):  # "a" matches, and leads nowhere inside
            fs.resolve_sources(self.ctx, ["a*"], "COPY")

    def test_special_files_never_opened(self) -> None:
        """A FIFO and a device node in a stage's root are copied as nodes (never read)."""
        os.mkfifo(os.path.join(self.root, "fifo"))
        os.mknod(os.path.join(self.root, "disk"), stat.S_IFCHR | 0o600, os.makedev(1, 3))
        dst = os.path.join(self.tmp, "dst")
        os.mkdir(dst)
        for name in ("fifo", "disk"):
            sources = fs.resolve_sources(self.root, [name], "COPY")
            fs.hash_sources(sources)
            copier.copy_into(dst, sources, f"/{name}", "/", copier.CopyOptions(owner=None))
        self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(dst, "fifo")).st_mode))
        info = os.lstat(os.path.join(dst, "disk"))
        self.assertTrue(stat.S_ISCHR(info.st_mode))
        self.assertEqual(info.st_rdev, os.makedev(1, 3))

    def test_dockerfile_read_refuses_fifo(self) -> None:
        """A FIFO Dockerfile is "not found", and reading it does not block."""
        os.mkfifo(os.path.join(self.ctx, "Dockerfile"))
        self.assertRaises(fs.BuildFileError, fs.read_dockerfile, self.ctx, "Dockerfile")


class DestinationTests(ScopeTestCase):
    """COPY, ADD and WORKDIR write inside the step's root whatever links the image holds."""

    def setUp(self) -> None:
        super().setUp()
        self.links(self.root)
        os.makedirs(os.path.join(self.ctx, "payload", "evil"))
        os.makedirs(os.path.join(self.ctx, "payload", "a"))
        os.makedirs(os.path.join(self.ctx, "payload", "rel"))
        for d in ("evil", "a", "rel"):
            with open(os.path.join(self.ctx, "payload", d, "x"), "w") as f:
                f.write("pwned")
            with open(os.path.join(self.ctx, "payload", d, "secret"), "w") as f:
                f.write("overwritten")
        with open(os.path.join(self.ctx, "f"), "w") as f:
            f.write("F")

    def copy(self, srcs: list[str], dest: str, **kw: object) -> None:
        sources = fs.resolve_sources(self.ctx, srcs, "COPY")
        copier.copy_into(self.root, sources, dest, "/", copier.CopyOptions(**kw))  # type: ignore[arg-type]  # **kw holds CopyOptions' fields of mixed types

    def test_directory_copy_through_image_links(self) -> None:
        """C{COPY payload/ /} with the image's C{evil}, C{a}, C{rel} links writes inside."""
        self.copy(["payload"], "/")
        self.assertOutsideUntouched()
        # The links lead nowhere inside the root: they are replaced by the directories.
        for d in ("evil", "a", "rel"):
            self.assertTrue(os.path.isfile(os.path.join(self.root, d, "x")))

    def test_directory_copy_follows_links_inside(self) -> None:
        """When the link's in-root target exists, the copy goes there (never outside)."""
        inside = os.path.join(self.root, self.outside.lstrip("/"))
        os.makedirs(inside)
        self.copy(["payload"], "/")
        self.assertOutsideUntouched()
        self.assertEqual(sorted(os.listdir(inside)), ["secret", "x"])
        self.assertTrue(os.path.islink(os.path.join(self.root, "evil")))

    def test_file_copy_through_image_links(self) -> None:
        """C{COPY f /evil/secret}, C{/a/}, C{/rel/sub/} with --chmod and --chown write inside."""
        for dest in ("/evil/secret", "/a/", "/rel/sub/", "/evil/sub/new/"):
            self.copy(["f"], dest, mode=0o4777, owner=(1, 1))
        self.assertOutsideUntouched()

    def test_workdir_through_image_links(self) -> None:
        """WORKDIR /a/new creates the directory inside the root."""
        copier.make_workdir(self.root, "/a/new", (5, 5))
        copier.make_workdir(self.root, "/rel/new2", None)
        self.assertOutsideUntouched()
        self.assertTrue(os.path.isdir(os.path.join(self.root, self.outside.lstrip("/"), "new")))

    def test_add_tar_through_image_links(self) -> None:
        """ADD of a local tar: members under the image's links, setuid, a directory chmod, a
        file replacing a directory, a hardlink to an outside name: all inside the root."""
        raw = tar_of(
            (member("evil/x", mode=0o4755), b"pwned"),
            (member("a/sub", tarfile.DIRTYPE, mode=0o777), None),
            (member("rel/secret"), b"over"),
            (member("evil/sub"), b"file over dir"),
            (member("lnk", tarfile.LNKTYPE, linkname="a/secret"), None),
        ).getvalue()
        with open(os.path.join(self.ctx, "t.tar"), "wb") as f:
            f.write(raw)
        sources = fs.resolve_sources(self.ctx, ["t.tar"], "ADD")
        try:
            copier.copy_into(self.root, sources, "/", "/", copier.CopyOptions(unpack=True), "ADD")
        except fs.BuildFileError:
            pass  # the hardlink to a missing name may refuse the step
        self.assertOutsideUntouched()

    def test_add_tar_member_links_as_parents(self) -> None:
        """The archive's own links (made by earlier members) used as parents are refused (a chain
        of links, one leading out); nothing outside is touched."""
        raw = tar_of(
            (member("l1", tarfile.SYMTYPE, linkname="missing/../l2"), None),
            (member("l2", tarfile.SYMTYPE, linkname=self.outside), None),
            (member("l1/x", mode=0o6755), b"pwned"),
            (member("l2/sub", tarfile.DIRTYPE, mode=0o777), None),
        ).getvalue()
        with open(os.path.join(self.ctx, "t.tar"), "wb") as f:
            f.write(raw)
        sources = fs.resolve_sources(self.ctx, ["t.tar"], "ADD")
        with self.assertRaises(fs.BuildFileError) as c:
            copier.copy_into(self.root, sources, "/u/", "/", copier.CopyOptions(unpack=True), "ADD")
        self.assertIn(
            "entry 'l1/x' is refused: its parent 'u/l1' is a symbolic link", str(c.exception)
        )
        self.assertOutsideUntouched()


class OwnerTests(ScopeTestCase):
    """--chown/USER names resolve from the image's own files only."""

    def test_etc_link_to_outside(self) -> None:
        """An image whose C{/etc} leads outside (absolute, C{missing/..}, climbing) has no users."""
        for target in (self.outside, "missing/../evil", "../" * 9 + self.outside.lstrip("/")):
            root = tempfile.mkdtemp(dir=self.tmp)
            os.symlink(self.outside, os.path.join(root, "evil"))
            os.symlink(target, os.path.join(root, "etc"))
            for spec in ("hostonly", "0:hostgrp"):
                self.assertRaises(fs.BuildFileError, fs.parse_chown, spec, root)

    def test_passwd_fifo_or_device(self) -> None:
        """A FIFO or device C{/etc/passwd} is not read (no hang, no host disk)."""
        os.mkdir(os.path.join(self.root, "etc"))
        os.mkfifo(os.path.join(self.root, "etc", "passwd"))
        os.mknod(os.path.join(self.root, "etc", "group"), stat.S_IFCHR | 0o600, os.makedev(1, 5))
        self.assertRaises(fs.BuildFileError, fs.parse_chown, "root", self.root)
        self.assertRaises(fs.BuildFileError, fs.parse_chown, "0:root", self.root)

    def test_own_files_used(self) -> None:
        """The image's own files still resolve names."""
        os.mkdir(os.path.join(self.root, "etc"))
        with open(os.path.join(self.root, "etc", "passwd"), "w") as f:
            f.write("app:x:7:8::/:/bin/sh\n")
        self.assertEqual(fs.parse_chown("app", self.root), (7, 8))


class HeredocNameTests(ScopeTestCase):
    """A heredoc name is a file name, never a path."""

    def test_parser_refuses_paths(self) -> None:
        """C{COPY <</x /d}, C{<<../x}, C{<<a/b}, C{<<..} are Dockerfile errors."""
        for name in ("/root/x", "../../x", "a/b", "..", "."):
            for cmd in ("COPY", "ADD"):
                text = f"FROM x\n{cmd} <<{name} /dst/\nbody\n{name}\n"
                with self.assertRaises(DockerfileError) as c:
                    parse(text)
                self.assertIn("not a valid file name", str(c.exception))

    def test_trigger_refuses_paths(self) -> None:
        """An ONBUILD trigger from a base image's config is held to the same rule."""
        with self.assertRaises(DockerfileError) as c:
            parse_trigger("COPY <</root/x /d/\nbody\n/root/x")
        self.assertIn("not a valid file name", str(c.exception))

    def test_plain_name_accepted(self) -> None:
        """A plain name parses and is written under a generated name in the scratch dir."""
        df = parse("FROM x\nCOPY <<file.txt /dst/\nbody\nfile.txt\n")
        self.assertEqual(df.stages[0].commands[0].heredocs[0].name, "file.txt")
        src = fs.write_file(self.ctx, "file.txt", b"body\n")
        self.assertEqual(src.name, "file.txt")
        self.assertNotEqual(src.path, "/file.txt")
        self.assertFalse(os.path.exists(os.path.join(self.ctx, "file.txt")))

    def test_write_file_refuses_paths(self) -> None:
        """Even past the parser, a path name writes nothing."""
        target = os.path.join(self.outside, "new")
        for name in (target, "../outside/new", "..", ""):
            self.assertRaises(fs.BuildFileError, fs.write_file, self.ctx, name, b"x")
        self.assertOutsideUntouched()


class CompatTests(ScopeTestCase):
    """Links inside the root still work as before."""

    def test_merged_usr_link_followed(self) -> None:
        """C{COPY rootfs/ /} with the image's C{/lib -> usr/lib} writes into C{/usr/lib}."""
        os.makedirs(os.path.join(self.root, "usr", "lib"))
        os.symlink("usr/lib", os.path.join(self.root, "lib"))
        os.makedirs(os.path.join(self.ctx, "rootfs", "lib"))
        with open(os.path.join(self.ctx, "rootfs", "lib", "x.so"), "w") as f:
            f.write("so")
        sources = fs.resolve_sources(self.ctx, ["rootfs"], "COPY")
        copier.copy_into(self.root, sources, "/", "/", copier.CopyOptions())
        self.assertTrue(os.path.islink(os.path.join(self.root, "lib")))
        self.assertTrue(os.path.isfile(os.path.join(self.root, "usr", "lib", "x.so")))

    def test_context_tar_links_inside(self) -> None:
        """A context with C{d -> sub} and C{d/f} puts C{f} into C{sub} (as before)."""
        fs.extract_context(make_tar({"sub/": b"", "d": "->sub", "d/f": "1"}), self.ctx)
        self.assertTrue(os.path.isfile(os.path.join(self.ctx, "sub", "f")))

    def test_link_loop_is_a_plain_error(self) -> None:
        """WORKDIR and COPY through a link loop the image holds: a plain message, no OSError."""
        os.symlink("/loop", os.path.join(self.root, "loop"))
        with self.assertRaises(fs.BuildFileError) as c:
            copier.make_workdir(self.root, "/loop/x", None)
        self.assertEqual(
            str(c.exception), "cannot create directory /loop/x: too many levels of symbolic links"
        )
        with open(os.path.join(self.ctx, "f"), "w") as f:
            f.write("F")
        sources = fs.resolve_sources(self.ctx, ["f"], "COPY")
        self.assertRaises(
            fs.BuildFileError,
            copier.copy_into, self.root, sources, "/loop/y/", "/", copier.CopyOptions(),
        )  # fmt: skip

    def test_non_directory_in_the_way(self) -> None:
        """A file where the destination needs a directory: dockerd's message, container path."""
        with open(os.path.join(self.root, "file"), "w") as f:
            f.write("x")
        with open(os.path.join(self.ctx, "f"), "w") as f:
            f.write("F")
        sources = fs.resolve_sources(self.ctx, ["f"], "COPY")
        with self.assertRaises(fs.BuildFileError) as c:
            copier.copy_into(self.root, sources, "/file/sub/", "/", copier.CopyOptions())
        self.assertEqual(str(c.exception), "cannot copy to non-directory: /file")
