"""Dockerfile parsing: lines, directives, forms, errors with line numbers."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.builder.parser import DockerfileError, parse, parse_trigger, parse_words


class ParseTests(SynchronousTestCase):
    """L{parse}."""

    def cmds(self, text: str) -> list:
        df = parse(text)
        return [c for s in df.stages for c in s.commands]

    def test_continuation_keeps_indent_and_skips_comments(self) -> None:
        """Continuation lines are joined as dockerd does; comment lines inside are dropped."""
        (run,) = self.cmds("FROM a\nRUN echo a \\\n    b \\\n# c\n    c\n")
        self.assertEqual(run.args, ("echo a     b     c",))
        self.assertEqual(run.original, "RUN echo a     b     c")
        self.assertEqual(run.line, 2)

    def test_empty_continuation_warns(self) -> None:
        """A blank line inside a continuation is skipped with a warning."""
        df = parse("FROM a\nRUN a \\\n\n b\n")
        self.assertEqual(df.stages[0].commands[0].args, ("a  b",))
        self.assertEqual(len(df.warnings), 1)

    def test_escape_directive(self) -> None:
        """C{# escape=`} makes the backtick the continuation character."""
        df = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  x\n")
        self.assertEqual(df.escape, "`")
        self.assertEqual(df.stages[0].commands[0].args, ("dir c:\\   x",))

    def test_directive_after_comment_ignored(self) -> None:
        """A directive after another comment is just a comment."""
        df = parse("# hello\n# escape=`\nFROM a\n")
        self.assertEqual(df.escape, "\\")

    def test_bad_escape(self) -> None:
        """Only backslash and backtick are escape tokens."""
        with self.assertRaises(DockerfileError) as c:
            parse("# escape=x\nFROM a\n")
        self.assertIn("invalid escape token", str(c.exception))

    def test_crlf_and_bom(self) -> None:
        """CRLF line endings and a BOM are accepted."""
        df = parse("\ufeffFROM a\r\nRUN x\r\n")
        self.assertEqual(df.stages[0].commands[0].args, ("x",))

    def test_json_and_shell_forms(self) -> None:
        """JSON arrays are exec form; invalid JSON falls back to shell form."""
        cmd, ep, run = self.cmds('FROM a\nCMD ["a", "b"]\nENTRYPOINT [\'x\']\nRUN ["sh"] # c\n')
        self.assertTrue(cmd.json_form)
        self.assertEqual(cmd.args, ("a", "b"))
        self.assertFalse(ep.json_form)
        self.assertEqual(ep.args, ("['x']",))
        self.assertFalse(run.json_form)

    def test_json_non_strings(self) -> None:
        """A JSON array with a non-string is an error."""
        with self.assertRaises(DockerfileError) as c:
            parse("FROM a\nCMD [1]\n")
        self.assertEqual(
            str(c.exception.for_file("Dockerfile")),
            "failed to parse Dockerfile: when using JSON array syntax, arrays must be "
            "comprised of strings only",
        )

    def test_env_forms(self) -> None:
        """ENV takes name=value pairs (quotes kept for the lexer) or the legacy two-word form."""
        new, old = self.cmds('FROM a\nENV A=1 B="x y"\nENV OLD some value\n')
        self.assertEqual(new.pairs, (("A", "1"), ("B", '"x y"')))
        self.assertEqual(old.pairs, (("OLD", "some value"),))

    def test_env_errors(self) -> None:
        """ENV needs a value; a later bare word lacks its =."""
        with self.assertRaises(DockerfileError) as c:
            parse("FROM a\nENV A\n")
        self.assertIn("ENV must have two arguments", str(c.exception))
        with self.assertRaises(DockerfileError) as c:
            parse("FROM a\nENV A=1 B\n")
        self.assertIn('can\'t find = in "B"', str(c.exception))

    def test_stages_and_meta_args(self) -> None:
        """ARGs before the first FROM are global; FROM ... AS names a stage (lower-cased)."""
        df = parse("ARG V=1\nFROM --platform=linux/amd64 base:$V AS Build\nRUN x\nFROM build\n")
        self.assertEqual([a.pairs for a in df.meta_args], [(("V", "1"),)])
        self.assertEqual(df.stages[0].name, "build")
        self.assertEqual(df.stages[0].platform, "linux/amd64")
        self.assertEqual(df.stages[0].base, "base:$V")
        self.assertEqual(df.stages[1].base, "build")

    def test_errors_have_line_numbers(self) -> None:
        """Errors name the instruction's first line."""
        cases = {
            "FROM a\n\nFOO x\n": "line 3: unknown instruction: FOO",
            "FROM a\nCOPY x\n": "line 2: COPY requires at least two arguments",
            "FROM a\nCOPY --bogus=1 a b\n": "line 2: unknown flag: --bogus",
            "FROM a\nSHELL sh\n": "line 2: SHELL requires the arguments to be in JSON form",
            "FROM a b\n": "line 1: FROM requires either one or three arguments",
            "FROM a AS 1x\n": "line 1: invalid name for build stage",
            "FROM a\nONBUILD FROM b\n": "line 2: FROM isn't allowed as an ONBUILD trigger",
        }
        for text, expected in cases.items():
            with self.assertRaises(DockerfileError) as c:
                parse(text)
            self.assertIn("dockerfile parse error on " + expected, str(c.exception))

    def test_line_parser_and_plain_errors(self) -> None:
        """Errors of the line parser carry no line in their text (the build names the file);
        "no build stage" is the bare message, as dockerd prints them."""
        cases = {
            "RUN x\n": ("plain", 1, "no build stage in current context"),
            "FROM a\nRUN <<E\nx\n": ("parser", 2, "unterminated heredoc"),
            "FROM a\nENV K\n": ("parser", 2, "ENV must have two arguments"),
            "# c\n\n": ("parser", 3, "file with no instructions"),
        }
        for text, (kind, line, message) in cases.items():
            with self.assertRaises(DockerfileError) as c:
                parse(text)
            self.assertEqual((c.exception.kind, c.exception.line, str(c.exception)),
                             (kind, line, message))  # fmt: skip
        self.assertEqual(
            str(c.exception.for_file("Dockerfile")),
            "failed to parse Dockerfile: file with no instructions",
        )

    def test_suggestion(self) -> None:
        """A misspelt instruction gets a suggestion."""
        with self.assertRaises(DockerfileError) as c:
            parse("FROM a\nRUNN x\n")
        self.assertIn("(did you mean run?)", str(c.exception))

    def test_heredocs(self) -> None:
        """RUN and COPY take heredocs; a quoted delimiter disables expansion; <<- strips tabs."""
        run, cp = self.cmds('FROM a\nRUN <<EOF\necho hi\nEOF\nCOPY <<-"X" /f\n\traw $Y\n\tX\n')
        self.assertEqual(run.heredocs[0].content, "echo hi\n")
        self.assertTrue(run.heredocs[0].expand)
        self.assertEqual(cp.heredocs[0].content, "raw $Y\n")
        self.assertFalse(cp.heredocs[0].expand)

    def test_flags(self) -> None:
        """Flags are read before the arguments; repeated ones are an error unless repeatable."""
        (cp,) = self.cmds("FROM a\nCOPY --from=b --chown=1:2 x y /d/\n")
        self.assertEqual(cp.flag("from"), "b")
        self.assertEqual(cp.args, ("x", "y", "/d/"))
        self.assertRaises(DockerfileError, parse, "FROM a\nCOPY --from=a --from=b x y\n")

    def test_healthcheck(self) -> None:
        """HEALTHCHECK CMD shell form becomes CMD-SHELL; NONE disables."""
        hc, none = self.cmds("FROM a\nHEALTHCHECK --retries=2 CMD true\nHEALTHCHECK NONE\n")
        self.assertEqual(hc.args, ("CMD-SHELL", "true"))
        self.assertEqual(hc.flag("retries"), "2")
        self.assertEqual(none.args, ("NONE",))

    def test_onbuild_trigger(self) -> None:
        """ONBUILD keeps the trigger text; it parses back into an instruction."""
        (ob,) = self.cmds("FROM a\nONBUILD RUN echo hi\n")
        self.assertEqual(ob.trigger, "RUN echo hi")
        self.assertEqual(parse_trigger(ob.trigger).args, ("echo hi",))

    def test_parse_words(self) -> None:
        """Words split on unquoted whitespace and keep their quotes."""
        self.assertEqual(parse_words("a='x y' b=\"1 2\" c", "\\"), ["a='x y'", 'b="1 2"', "c"])
