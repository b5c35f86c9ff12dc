"""C{.dockerignore} reading and matching."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import InvalidParameter
from pyd.engine.builder.ignore import PatternMatcher, read_patterns


class IgnoreTests(SynchronousTestCase):
    """L{read_patterns} and L{PatternMatcher}."""

    def test_read(self) -> None:
        """Comments (column 1 only) and blanks are skipped; patterns are cleaned."""
        self.assertEqual(
            read_patterns("# c\n  # not a comment\n\n/abs//x/\n!keep\n./a/../b\n"),
            ["# not a comment", "abs/x", "!keep", "b"],
        )
        self.assertRaises(InvalidParameter, read_patterns, "!\n")

    def test_matching(self) -> None:
        """Anchored globs, parent matching, ** and the last-match-wins exceptions."""
        m = PatternMatcher(read_patterns("*.log\n!keep.log\nbuild\n**/tmp\n!build/keep\n"))
        expected = {
            "a.log": True, "keep.log": False, "d/a.log": False, "build": True,
            "build/x": True, "build/keep": False, "a/b/tmp": True, "tmp/f": True,
            "src/main.go": False,
        }  # fmt: skip
        for path, excluded in expected.items():
            self.assertEqual(m.matches(path), excluded, path)

    def test_question_and_class(self) -> None:
        """C{?} matches one character within an element; classes work."""
        m = PatternMatcher(["f?o", "[ab]*.txt"])
        self.assertTrue(m.matches("foo"))
        self.assertFalse(m.matches("f/o"))
        self.assertTrue(m.matches("b1.txt"))
        self.assertFalse(m.matches("c1.txt"))

    def test_read_as_go_does(self) -> None:
        """Lines end at \n only (CRLF files work); a leading // is one / (filepath.Clean)."""
        self.assertEqual(read_patterns("a\r\nb\x1cc\n//d/e\n!//f\n"), ["a", "b\x1cc", "d/e", "!f"])
        m = PatternMatcher(read_patterns("//secret\n"))
        self.assertTrue(m.matches("secret"))
        self.assertTrue(m.matches("secret/key"))
