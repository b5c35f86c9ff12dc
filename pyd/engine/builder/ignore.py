"""C{.dockerignore}: reading the file and matching paths exactly as moby's patternmatcher does
(moby/patternmatcher: ignorefile/ignorefile.go C{ReadAll}, patternmatcher.go C{New},
C{MatchesOrParentMatches}; layer: engine).

Reading: a line starting with C{#} (in column 1, before trimming) is a comment; the rest are
trimmed, a leading C{!} (with the blanks after it) marks an exception, then the path is cleaned
(C{filepath.Clean}) and one leading C{/} dropped. Each pattern is then one of moby's four kinds:
exact (no wildcard: compared as a string), prefix (C{dir/**}: the text before C{**} is a string
prefix), suffix (C{**/x} or C{**x}: the text after C{**} is a string suffix, C{**/x} also matching
C{x}) or a regular expression built as moby builds it (C{*} any run without C{/}, C{?} one
character but C{/}, C{**} any number of elements, C{[...]} passed to the regexp engine as is, so
C{[!a]} is a class of C{!} and C{a}, and C{\\x} the regexp escape of C{x}). A path is excluded
when the last pattern matching it or one of its parent directories is not an exception.
"""

from __future__ import annotations

import posixpath
import re

import attrs

from pyd.core.errors import InvalidParameter
from pyd.core.ids import go_clean

_BAD_PATTERN = "syntax error in pattern"
# Characters moby escapes (regexp metacharacters that mean nothing in a filepath pattern);
# notably not C{^}, which stays a regexp anchor as in moby.
_ESCAPED = set(".+()|{}$")


def read_patterns(data: str | bytes) -> list[str]:
    """The patterns of a C{.dockerignore} file, as moby's C{ignorefile.ReadAll} reads them.

    @raise InvalidParameter: a bare C{!}.
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    if data.startswith("\ufeff"):
        data = data[1:]
    out = []
    # Lines end at \n only (a trailing \r dropped), as Go's bufio.Scanner splits them; str's
    # splitlines would also split at \x1c, \x85, \u2028 and the like.
    for raw in data.split("\n"):
        line = raw.removesuffix("\r")
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
            if not line:
                raise InvalidParameter('illegal exclusion pattern: "!"')
        line = go_clean(line)
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
        out.append(("!" if invert else "") + line)
    return out


def check_syntax(pattern: str) -> None:
    """Go's C{filepath.Match(pattern, ".")} error check: an unterminated or malformed class
    (C{[}, C{[]}, C{[a-]}, C{[-a]}) or a trailing C{\\} is a bad pattern.

    @raise InvalidParameter: C{syntax error in pattern}.
    """
    i, n = 0, len(pattern)

    def esc(j: int) -> int:
        # One class character (possibly escaped); the index after it.
        if j >= n or pattern[j] in "-]":
            raise InvalidParameter(_BAD_PATTERN)
        if pattern[j] == "\\":
            j += 1
            if j >= n:
                raise InvalidParameter(_BAD_PATTERN)
        return j + 1

    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise InvalidParameter(_BAD_PATTERN)
            i += 2
        elif c == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges > 0:
                    i += 1
                    break
                i = esc(i)
                if i < n and pattern[i] == "-":
                    i = esc(i + 1)
                ranges += 1
        else:
            i += 1


@attrs.frozen
class Pattern:
    """One compiled pattern: its cleaned text and how moby matches it."""

    text: str
    exclusion: bool
    kind: str  # "exact" | "prefix" | "suffix" | "regexp"
    regex: re.Pattern[str] | None = None

    def match(self, path: str) -> bool:
        """Whether this pattern (not its parents' rule) matches C{path}."""
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        assert self.regex is not None
        return self.regex.search(path) is not None


def compile_pattern(text: str, exclusion: bool = False) -> Pattern:
    """moby's C{Pattern.compile}: the match kind and, for a regexp, the expression.

    @raise InvalidParameter: a pattern Go's C{filepath.Match} or C{regexp} refuses.
    """
    check_syntax(text)
    rx = ["^"]
    kind = "exact"
    i, n = 0, len(text)
    index = 0  # moby counts scanner steps, not characters, for "** at the start"
    while i < n:
        c = text[i]
        i += 1
        if c == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        rx.append(".*")
                        kind = "regexp"
                else:
                    rx.append("(.*/)?")
                    kind = "regexp"
                if index == 0:
                    kind = "suffix"
            else:
                rx.append("[^/]*")
                kind = "regexp"
        elif c == "?":
            rx.append("[^/]")
            kind = "regexp"
        elif c in _ESCAPED:
            rx.append("\\" + c)
        elif c == "\\":
            if i < n:
                rx.append(_go_escape(text[i]))
                i += 1
                kind = "regexp"
            else:
                rx.append("\\\\")
        elif c in "[]":
            rx.append(c)
            kind = "regexp"
        else:
            # Nothing else is special in RE2 but C{^}, which moby leaves an anchor (as Python's).
            rx.append(c)
        index += 1
    if kind != "regexp":
        return Pattern(text, exclusion, kind)
    # Go's $ (no multi-line flag) is the end of the text; Python's also matches before a final
    # newline, hence \Z.
    try:
        regex = re.compile("".join(rx) + r"\Z")
    except re.error as e:
        raise InvalidParameter(_BAD_PATTERN) from e
    return Pattern(text, exclusion, kind, regex)


def _go_escape(c: str) -> str:
    # RE2's "\x": punctuation is literal, letters are classes/assertions Python shares
    # (\d \w \s \b \B \A); \z (end of text) is Python's \Z.
    if c == "z":
        return r"\Z"
    if c.isalnum():
        return "\\" + c
    return re.escape(c)


class PatternMatcher:
    """Decides which context paths a list of patterns excludes (moby's C{PatternMatcher}).

    @raise InvalidParameter: a bare C{!} or a malformed pattern (moby's C{New}).
    """

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for given in patterns:
            if not given.strip():
                continue
            p = go_clean(given.strip())
            excl = p.startswith("!")
            if excl:
                if len(p) == 1:
                    raise InvalidParameter('illegal exclusion pattern: "!"')
                p = p[1:]
            self.patterns.append(compile_pattern(p, excl))

    @property
    def has_exclusions(self) -> bool:
        """Whether any pattern is an exception (C{!...})."""
        return any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        """Whether C{path} (slash-separated, relative to the context root) is excluded
        (moby's C{MatchesOrParentMatches}; C{.} is never excluded)."""
        path = go_clean(path)
        if path == ".":
            return False
        parent = posixpath.dirname(path) or "."
        dirs = parent.split("/")
        matched = False
        for p in self.patterns:
            # As moby: an inclusion cannot change an excluded path, nor an exception a kept one.
            if p.exclusion != matched:
                continue
            hit = p.match(path)
            if not hit and parent != ".":
                hit = any(p.match("/".join(dirs[: k + 1])) for k in range(len(dirs)))
            if hit:
                matched = not p.exclusion
        return matched
