"""Variable substitution as dockerd's classic builder does it."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pyd.engine.builder.lexer import LexError, process_word, process_words

ENV = {"A": "1", "E": "", "P": "/usr/local/bin", "S": "two words"}


class ProcessWordTests(SynchronousTestCase):
    """L{process_word}."""

    def check(self, word: str, expected: str, escape: str = "\\") -> None:
        self.assertEqual(process_word(word, ENV, escape), expected, word)

    def test_plain_and_braced(self) -> None:
        """C{$VAR} and C{${VAR}} expand; unset variables expand to nothing."""
        self.check("$A", "1")
        self.check("${A}x", "1x")
        self.check("x$NOPE.y", "x.y")
        self.check("$1x", "x")

    def test_defaults(self) -> None:
        """C{:-} treats empty as unset, C{-} only unset."""
        self.check("${NOPE:-def}", "def")
        self.check("${E:-d}", "d")
        self.check("${E-d}", "")
        self.check("${A:-d}", "1")

    def test_alternatives(self) -> None:
        """C{:+} gives the word only when set and non-empty."""
        self.check("${A:+yes}", "yes")
        self.check("${NOPE:+yes}", "")
        self.check("${E+yes}", "yes")

    def test_required(self) -> None:
        """C{:?} fails with the given or dockerd's default message."""
        with self.assertRaises(LexError) as c:
            process_word("${NOPE:?oops}", ENV)
        self.assertEqual(str(c.exception), "NOPE: oops")
        with self.assertRaises(LexError) as c:
            process_word("${NOPE?}", ENV)
        self.assertEqual(str(c.exception), "NOPE: is not allowed to be unset")

    def test_quotes(self) -> None:
        """Single quotes are literal; double quotes expand; quotes are removed."""
        self.check("'$A'", "$A")
        self.check('"$A b"', "1 b")
        self.check('"a\\nb"', "a\\nb")
        self.check("a\\nb", "anb")
        self.check("\\$A", "$A")
        self.check('"say \\"hi\\""', 'say "hi"')

    def test_escape_directive(self) -> None:
        """With the backtick escape, a backslash is an ordinary character."""
        self.check("\\$A", "\\1", escape="`")
        self.check("`$A", "$A", escape="`")

    def test_patterns(self) -> None:
        """Prefix/suffix removal and replacement."""
        self.check("${P#*/}", "usr/local/bin")
        self.check("${P##*/}", "bin")
        self.check("${P%/*}", "/usr/local")
        self.check("${P%%/l*}", "/usr")
        self.check("${P/local/X}", "/usr/X/bin")
        self.check("${P//l/L}", "/usr/LocaL/bin")

    def test_bad_substitution(self) -> None:
        """C{${}} and a missing brace are errors."""
        self.assertRaises(LexError, process_word, "${}", ENV)
        self.assertRaises(LexError, process_word, "${A", ENV)
        self.assertRaises(LexError, process_word, "'open", ENV)

    def test_lone_dollar(self) -> None:
        """A C{$} before a non-name character stays literal."""
        self.check("$", "$")
        self.check("a$ b", "a$ b")


class ProcessWordsTests(SynchronousTestCase):
    """L{process_words} (EXPOSE)."""

    def test_split_expansion(self) -> None:
        """An unquoted expansion splits into words; a quoted one does not."""
        self.assertEqual(process_words("$X 80/udp", {"X": "80 443"}), ["80", "443", "80/udp"])
        self.assertEqual(process_words('"$S"', ENV), ["two words"])
