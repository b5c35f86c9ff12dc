"""BuildKit frontend syntax on the classic API (issue 20): directives, heredocs, RUN flags and
their parsing rules, platform ARGs (pure functions and the parser)."""

from __future__ import annotations

from unittest import mock

from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.builder import frontend
from pyd.engine.builder.frontend import FrontendError, Mount, parse_mount, parse_run_options
from pyd.engine.builder.parser import DockerfileError, parse


def _ident(v: str) -> str:
    return v


class SyntaxDirectiveTests(SynchronousTestCase):
    def test_builtin_frontends_accepted(self) -> None:
        """docker/dockerfile:1, 1.x, 1.x.y, labs, -labs, by digest, with docker.io/ are built in."""
        for ref in (
            "docker/dockerfile:1",
            "docker/dockerfile:1.7",
            "docker/dockerfile:1.7.1",
            "docker/dockerfile:labs",
            "docker/dockerfile:1.7-labs",
            "docker/dockerfile",
            "docker.io/docker/dockerfile:1",
            "docker/dockerfile-upstream:1.19.0",
            "docker/dockerfile:1@sha256:" + "a" * 64,
        ):
            df = parse(f"# syntax={ref}\nFROM scratch\n")
            self.assertEqual(df.syntax, ref)

    def test_foreign_frontend_refused(self) -> None:
        """Any other frontend image is refused before anything is built, naming it."""
        for ref in ("example.com/x/frontend:1", "docker/dockerfile:0.1", "tonistiigi/x:1"):
            with self.assertRaises(DockerfileError) as cm:
                parse(f"# syntax={ref}\nFROM scratch\n")
            self.assertIn(f"unsupported Dockerfile frontend '{ref}'", str(cm.exception))
            self.assertEqual(cm.exception.kind, "plain")

    def test_check_and_escape_directives(self) -> None:
        """# check= is accepted (not run); # escape= still applies with a syntax line."""
        df = parse(
            "# syntax=docker/dockerfile:1\n# check=skip=all\n# escape=`\nFROM scratch\n"
            "ENV A=1 `\n  B=2\n"
        )
        self.assertEqual(df.check, "skip=all")
        self.assertEqual(df.escape, "`")
        self.assertEqual(df.stages[0].commands[0].pairs, (("A", "1"), ("B", "2")))

    def test_syntax_after_instruction_is_a_comment(self) -> None:
        """A syntax line below an instruction is only a comment (nothing refused)."""
        df = parse("FROM scratch\n# syntax=example.com/x:1\n")
        self.assertEqual(df.syntax, "")

    def test_duplicate_directive(self) -> None:
        """Two syntax lines: BuildKit's error."""
        with self.assertRaises(DockerfileError) as cm:
            parse("# syntax=docker/dockerfile:1\n# syntax=docker/dockerfile:1\nFROM scratch\n")
        self.assertIn("only one syntax parser directive can be used", str(cm.exception))


class HeredocParseTests(SynchronousTestCase):
    def test_several_heredocs_and_program(self) -> None:
        """RUN python3 <<EOF, several heredocs in one RUN, <<- strips tabs, quotes disable
        expansion."""
        df = parse(
            "FROM scratch\n"
            "RUN python3 <<EOF\nprint(1)\nEOF\n"
            "RUN cat <<A <<-'B' > /x\n$a\nA\n\t$b\n\tB\n"
            'COPY <<"one" <<two /dst/\n1\none\n2\ntwo\n'
        )
        run1, run2, cp = df.stages[0].commands
        self.assertEqual(run1.heredocs[0].content, "print(1)\n")
        self.assertEqual([h.name for h in run2.heredocs], ["A", "B"])
        self.assertEqual(run2.heredocs[1].content, "$b\n")
        self.assertEqual([h.expand for h in run2.heredocs], [True, False])
        self.assertEqual([(h.name, h.expand) for h in cp.heredocs], [("one", False), ("two", True)])

    def test_copy_heredoc_name_is_a_file_name(self) -> None:
        """COPY heredoc names stay file names (kept from the path-safety work)."""
        with self.assertRaises(DockerfileError):
            parse("FROM scratch\nCOPY <<../x /d/\nhi\n../x\n")


class MountParseTests(SynchronousTestCase):
    def test_cache_defaults(self) -> None:
        """A cache mount is read-write, shared, with the target as id; relative targets join
        the working directory."""
        m = parse_mount("type=cache,target=/root/.cache/pip", _ident)
        self.assertEqual(
            m, Mount(type="cache", target="/root/.cache/pip", readonly=False, id="/root/.cache/pip")
        )
        m = parse_mount("type=cache,dst=cache,sharing=locked,mode=0700,uid=10,gid=20", _ident, "/w")
        self.assertEqual((m.target, m.id, m.sharing, m.mode, m.uid, m.gid),
                         ("/w/cache", "cache", "locked", 0o700, 10, 20))  # fmt: skip

    def test_bind_and_tmpfs(self) -> None:
        """A bind is read-only unless rw; from/source; tmpfs size in bytes."""
        m = parse_mount("target=/src,from=build,source=/out", _ident)
        self.assertEqual((m.type, m.readonly, m.from_, m.source), ("bind", True, "build", "/out"))
        self.assertFalse(parse_mount("type=bind,target=/s,rw", _ident).readonly)
        self.assertFalse(parse_mount("type=bind,target=/s,readwrite=true", _ident).readonly)
        m = parse_mount("type=tmpfs,target=/t,size=64m", _ident)
        self.assertEqual((m.readonly, m.size), (False, 64 * 1024 * 1024))

    def test_secret_and_ssh(self) -> None:
        """secret/ssh parse (required bare or =bool); a secret needs an id, source or target."""
        m = parse_mount("type=secret,id=tok,required", _ident)
        self.assertTrue(m.required)
        self.assertFalse(parse_mount("type=ssh,required=false", _ident).required)
        with self.assertRaises(FrontendError) as cm:
            parse_mount("type=secret", _ident)
        self.assertIn("one of source, target required", str(cm.exception))

    def test_errors_as_buildkit_words_them(self) -> None:
        """Unknown type/key, bad values, options of other types, the root as target."""
        cases = {
            "type=nfs,target=/x": 'unsupported mount type "nfs"',
            "type=cache,target=/x,bogus=1": "unexpected key 'bogus' in 'bogus=1'",
            "type=cache,target=/x,sharing=sometimes": 'unsupported sharing value "sometimes"',
            "type=cache,target=/x,mode=999": "invalid value 999 for mode",
            "type=bind,target=/x,uid=1": 'uid not allowed for "bind" type mounts',
            "type=bind,target=/x,sharing=locked": "invalid cache sharing set for bind mount",
            "type=bind,target=/x,size=1m": "unexpected key 'size' for mount type 'bind'",
            "type=cache,target=/x,required": "unexpected key 'required' for mount type 'cache'",
            "type=cache,target=/x,ro=maybe": "invalid value for ro: maybe",
            "type=cache,target=/": 'invalid mount target "/"',
            "type=cache": "target is required",
            "type=bind,target=/x,from=$STAGE": "doesn't support variable expansion",
            "type=cache,target=/x,flag": "invalid field 'flag' must be a key=value pair",
        }
        for value, msg in cases.items():
            with self.assertRaises(FrontendError, msg=value) as cm:
                parse_mount(value, _ident)
            self.assertIn(msg, str(cm.exception), value)

    def test_values_expand_but_from_does_not(self) -> None:
        """Variables expand in each value (via the builder's expander), never in from=."""
        m = parse_mount("type=cache,target=$T,id=$T", lambda v: v.replace("$T", "/c"))
        self.assertEqual((m.target, m.id), ("/c", "/c"))

    def test_quoted_csv(self) -> None:
        """A quoted field may hold a comma, as Go's CSV reader allows."""
        m = parse_mount('type=bind,"source=a,b",target=/x', _ident)
        self.assertEqual(m.source, "a,b")


class RunOptionsTests(SynchronousTestCase):
    def test_network_security_and_duplicates(self) -> None:
        """--network values, --security values, --device refused, one target once."""
        o = parse_run_options([("network", "none"), ("security", "insecure")], _ident, "/")
        self.assertEqual((o.network, o.security), ("none", "insecure"))
        for flags, msg in (
            ([("network", "bridge2")], "unsupported network mode"),
            ([("security", "root")], "unsupported security mode"),
            ([("device", "/dev/kvm")], "RUN --device is not supported"),
            (
                [("mount", "type=tmpfs,target=/a"), ("mount", "type=cache,target=/a")],
                "mount destination /a is used more than once",
            ),
        ):
            with self.assertRaises(FrontendError) as cm:
                parse_run_options(flags, _ident, "/")
            self.assertIn(msg, str(cm.exception))

    def test_key_covers_every_option(self) -> None:
        """The cache-key part changes with any mount option; no flags give an empty key."""
        self.assertEqual(parse_run_options([], _ident, "/").key(), "")
        base = parse_run_options([("mount", "type=cache,target=/c,id=a")], _ident, "/").key()
        for other in (
            [("mount", "type=cache,target=/c,id=b")],
            [("mount", "type=cache,target=/c,id=a,sharing=locked")],
            [("mount", "type=cache,target=/c,id=a,uid=1")],
            [("mount", "type=cache,target=/d,id=a")],
            [("mount", "type=cache,target=/c,id=a"), ("network", "none")],
        ):
            self.assertNotEqual(parse_run_options(other, _ident, "/").key(), base, other)


class PlatformTests(SynchronousTestCase):
    def test_platform_args_are_the_host(self) -> None:
        """TARGET* and BUILD* carry the host's os/arch/variant."""
        with mock.patch("platform.machine", return_value="x86_64"):
            args = frontend.platform_args()
            self.assertEqual(args["TARGETPLATFORM"], "linux/amd64")
            self.assertEqual(args["BUILDARCH"], "amd64")
            self.assertEqual(args["TARGETVARIANT"], "")
            frontend.check_platform("linux/amd64")
            frontend.check_platform("linux")
            with self.assertRaises(FrontendError):
                frontend.check_platform("linux/arm64")
        with mock.patch("platform.machine", return_value="armv7l"):
            self.assertEqual(frontend.platform_args()["BUILDPLATFORM"], "linux/arm/v7")
            frontend.check_platform("linux/arm/v7")
            with self.assertRaises(FrontendError):
                frontend.check_platform("linux/arm/v6")

    def test_git_urls(self) -> None:
        """ADD sources that name git repositories."""
        for s in ("https://github.com/a/b.git", "git@github.com:a/b.git", "git://h/r",
                  "https://h/r.git#main", "github.com/a/b"):  # fmt: skip
            self.assertTrue(frontend.git_url(s), s)
        self.assertFalse(frontend.git_url("https://h/file.tar.gz"))
