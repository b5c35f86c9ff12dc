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


# (pattern, path, excluded) as moby/patternmatcher's MatchesOrParentMatches answers them
# (their patternmatcher_test.go TestMatches table, plus the kinds below).
_MOBY = [
    ("**", "file", True), ("**/", "file", True), ("**", "dir/file", True),
    ("**/**", "dir/file", True), ("dir/**", "dir/file", True), ("dir/**", "dir/d2/file", True),
    ("**/dir", "dir", True), ("**/dir", "dir/file", True), ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True), ("**file", "file", True),
    ("**file", "dir/dir/file", True), ("**/file*", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True), ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False), ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True), ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True), ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True), ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False), ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True), (".*", ".foo", True), (".*", "foo", False),
    ("abc.def", "abcdef", False), ("abc.def", "abc.def", True), ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False), ("a\\\\", "a\\", True), ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/d2/foo/bar", True), ("abc/**", "abc", False), ("abc/**", "abc/d/g", True),
    ("**/.foo", ".foo", True), ("**/.foo", "bar.foo", False), ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False), ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\*b", "a*b", True), ("a\\*b", "axb", False),
    # "**x" at the start is a plain suffix: any path ending in x, not only an element x.
    ("**file", "dir/xfile", True), ("**.log", "a/b.log", True),
    # Classes go to the regexp engine as written: [!a] is a class of "!" and "a".
    ("[!a]", "!", True), ("[!a]", "b", False), ("f[!a]o", "fbo", False),
    # moby does not escape "^": it stays an anchor, so it never matches mid-pattern.
    ("*^x", "a^x", False), ("a^b", "a^b", True),
    # Parents: a pattern matching a directory excludes what is below it.
    ("build", "build/x/y", True), ("b*/x", "build/x/y", True), ("x", "build/x", False),
    ("dir/", "dir/f", True), ("/abs", "abs/f", True),
]  # fmt: skip


class MobyPatternTests(SynchronousTestCase):
    """L{PatternMatcher} answers as moby's patternmatcher does."""

    def test_moby_table(self) -> None:
        """Each single pattern excludes exactly what moby's does."""
        for pattern, path, excluded in _MOBY:
            m = PatternMatcher(read_patterns(pattern))
            self.assertEqual(m.matches(path), excluded, (pattern, path))

    def test_exceptions(self) -> None:
        """The last matching pattern (on the path or a parent) wins; an exception re-includes
        below an excluded directory; a later inclusion excludes again."""
        for patterns, path, excluded in [
            (["**", "!util/docker/web"], "util/docker/web/foo", False),
            (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
            (["**", "!dist/*.whl"], "dist/p-1+g.whl", False),
            (["*", "!keep", "keep/tmp"], "keep/tmp/x", True),
            (["*", "!keep", "keep/tmp"], "keep/x", False),
            (["dir", "!dir/in"], "dir/out", True),
            (["dir", "!dir/in"], "dir/in/f", False),
            (["!x", "x"], "x", True),
        ]:
            self.assertEqual(PatternMatcher(patterns).matches(path), excluded, (patterns, path))

    def test_read_comments_and_names(self) -> None:
        """C{#} in column 1 is a comment; after a blank it is a name; C{!} may be followed by
        blanks; trailing slashes are cleaned away."""
        self.assertEqual(
            read_patterns("#c\n #name\n! keep/ \r\n\ufeffx\n"), ["#name", "!keep", "\ufeffx"]
        )
        self.assertEqual(read_patterns("\ufeff#c\nd//e/./\n"), ["d/e"])

    def test_bad_patterns(self) -> None:
        """Patterns Go's filepath.Match refuses are moby's syntax error."""
        for bad in ("[", "a[", "[]a]", "[a-]", "[-a]", "a\\", "[z-a]"):
            with self.assertRaises(InvalidParameter, msg=bad) as c:
                PatternMatcher([bad])
            self.assertEqual(str(c.exception), "syntax error in pattern")
        self.assertRaises(InvalidParameter, PatternMatcher, ["!"])
