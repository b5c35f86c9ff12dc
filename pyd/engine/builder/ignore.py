"""C{.dockerignore}: reading the file and matching paths the way the docker CLI does
(moby/patternmatcher semantics; layer: engine).

Patterns are anchored at the context root and cleaned (C{filepath.Clean}, one leading C{/} dropped);
C{*} matches within one path element, C{?} one character, C{**} any number of elements, C{[...]}
character classes, C{\\} escapes. A path is excluded when the last pattern that matches it, or one of
its parent directories, is not an exception (C{!pattern}).
"""

from __future__ import annotations

import posixpath
import re

import attrs

from pyd.core.errors import InvalidParameter


@attrs.frozen
class Pattern:
    """One compiled pattern."""

    text: str
    exclusion: bool
    regex: re.Pattern[str]


def read_patterns(data: str | bytes) -> list[str]:
    """The patterns of a C{.dockerignore} file, as the CLI reads them.

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
        if raw.startswith("#"):
            continue
        line = raw.removesuffix("\r").strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
            if not line:
                raise InvalidParameter('illegal exclusion pattern: "!"')
        line = posixpath.normpath(line)
        if line.startswith("//"):  # POSIX keeps a leading "//", Go's filepath.Clean does not
            line = "/" + line.lstrip("/")
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
        out.append(("!" if invert else "") + line)
    return out


def _compile(pattern: str) -> re.Pattern[str]:
    rx = ["^"]
    i = 0
    n = len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if in_class:
            if c == "]":
                in_class = False
            if c == "\\" and i + 1 < n:
                rx.append(re.escape(pattern[i + 1]))
                i += 2
                continue
            rx.append(c)
            i += 1
            continue
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                rx.append(".*" if i >= n else "(.*/)?")
                continue
            rx.append("[^/]*")
        elif c == "?":
            rx.append("[^/]")
        elif c == "\\":
            if i + 1 < n:
                rx.append(re.escape(pattern[i + 1]))
                i += 1
            else:
                rx.append(re.escape("\\"))
        elif c == "[":
            in_class = True
            rx.append("[")
            if i + 1 < n and pattern[i + 1] in ("!", "^"):
                rx.append("^")
                i += 1
        else:
            rx.append(re.escape(c))
        i += 1
    if in_class:
        raise InvalidParameter("syntax error in pattern")
    rx.append("$")
    try:
        return re.compile("".join(rx), re.S)
    except re.error as e:
        raise InvalidParameter(f"syntax error in pattern: {e}") from e


class PatternMatcher:
    """Decides which context paths a list of patterns excludes."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for p in patterns:
            excl = p.startswith("!")
            text = p[1:] if excl else p
            if not text:
                continue
            self.patterns.append(Pattern(text, excl, _compile(text)))

    @property
    def has_exclusions(self) -> bool:
        """Whether any pattern is an exception (C{!...})."""
        return any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        """Whether C{path} (slash-separated, relative to the context root) is excluded."""
        path = posixpath.normpath(path.lstrip("/"))
        parts = path.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for p in self.patterns:
            hit = bool(p.regex.match(path))
            if not hit:
                hit = any(p.regex.match(parent) for parent in parents)
            if hit:
                matched = not p.exclusion
        return matched
