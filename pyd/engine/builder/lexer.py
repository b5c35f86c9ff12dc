"""Variable substitution in Dockerfile words, as the classic builder's shell lexer does it
(layer: engine).

C{process_word} expands C{$VAR}, C{${VAR}}, C{${VAR:-x}}, C{${VAR-x}}, C{${VAR:+x}}, C{${VAR+x}},
C{${VAR:?msg}}, C{${VAR?msg}} and the pattern forms C{#}, C{##}, C{%}, C{%%}, C{/}, C{//}, and removes
quotes: single quotes are literal; inside double quotes the escape token escapes only C{"}, C{$} and
itself; unquoted, it escapes any character and is dropped. C{process_words} also splits the result on
unquoted whitespace (EXPOSE).
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class LexError(ValueError):
    """A substitution that cannot be processed (the message is dockerd's)."""


def _pattern_regex(pat: str, greedy: bool, anchor: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if c == "\\" and i + 1 < len(pat):
            out.append(re.escape(pat[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(".*" if greedy else ".*?")
        elif c == "?":
            out.append(".")
        else:
            out.append(re.escape(c))
        i += 1
    body = "".join(out)
    if anchor == "start":
        return re.compile("^(?:" + body + ")", re.S)
    if anchor == "end":
        return re.compile("(?:" + body + ")$", re.S)
    return re.compile(body, re.S)


def _trim_suffix(value: str, pat: str, longest: bool) -> str:
    # The shortest suffix match starts as late as possible.
    rx = _pattern_regex(pat, True, "end")
    starts = range(len(value) + 1) if longest else range(len(value), -1, -1)
    for s in starts:
        if rx.fullmatch(value[s:]):
            return value[:s]
    return value


def _trim_prefix(value: str, pat: str, longest: bool) -> str:
    rx = _pattern_regex(pat, True, "start")
    ends = range(len(value), -1, -1) if longest else range(len(value) + 1)
    for e in ends:
        if rx.fullmatch(value[:e]):
            return value[e:]
    return value


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, split: bool) -> None:
        self.s = text
        self.i = 0
        self.env = env
        self.esc = escape
        self.split = split
        self.words: list[str] = []
        self.word: list[str] = []
        self.in_word = False

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        c = self.peek()
        self.i += 1
        return c

    def run(self) -> tuple[str, list[str]]:
        out: list[str] = []
        while self.i < len(self.s):
            c = self.peek()
            if self.split and c in " \t\r\n":
                self.i += 1
                if self.in_word:
                    self.words.append("".join(self.word))
                    self.word = []
                    self.in_word = False
                out.append(c)
                continue
            piece = self.process_piece(stop="")
            out.append(piece)
        if self.in_word:
            self.words.append("".join(self.word))
        return "".join(out), self.words

    def emit(self, text: str) -> str:
        self.word.append(text)
        self.in_word = True
        return text

    def process_piece(self, stop: str) -> str:
        c = self.peek()
        if c == "'":
            return self.emit(self.single_quoted())
        if c == '"':
            return self.emit(self.double_quoted())
        if c == "$":
            value = self.dollar()
            if self.split:
                # An unquoted expansion is split into several words.
                parts = value.split()
                if not parts:
                    return ""
                lead = value[:1].isspace()
                trail = value[-1:].isspace()
                if lead and self.in_word:
                    self.words.append("".join(self.word))
                    self.word = []
                    self.in_word = False
                for k, p in enumerate(parts):
                    if k > 0:
                        self.words.append("".join(self.word))
                        self.word = []
                    self.word.append(p)
                    self.in_word = True
                if trail:
                    self.words.append("".join(self.word))
                    self.word = []
                    self.in_word = False
                return value
            return self.emit(value)
        if c == self.esc:
            self.i += 1
            if self.i >= len(self.s):
                return self.emit("")
            return self.emit(self.next())
        self.i += 1
        return self.emit(c)

    def single_quoted(self) -> str:
        self.i += 1
        start = self.i
        end = self.s.find("'", start)
        if end < 0:
            raise LexError("unexpected end of statement while looking for matching single-quote")
        self.i = end + 1
        return self.s[start:end]

    def double_quoted(self) -> str:
        self.i += 1
        out: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise LexError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            c = self.peek()
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "$":
                out.append(self.dollar())
                continue
            if c == self.esc:
                nxt = self.s[self.i + 1 : self.i + 2]
                if nxt in ('"', "$", self.esc):
                    out.append(nxt)
                    self.i += 2
                    continue
            out.append(c)
            self.i += 1

    def name(self) -> str:
        start = self.i
        while self.i < len(self.s) and (self.s[self.i].isalnum() or self.s[self.i] == "_"):
            self.i += 1
        return self.s[start : self.i]

    def lookup(self, name: str) -> str | None:
        return self.env.get(name)

    def dollar(self) -> str:
        self.i += 1  # the $
        c = self.peek()
        if c == "{":
            self.i += 1
            return self.braced()
        if c in ("@", "$") or (c and c.isdigit()):
            self.i += 1
            return self.lookup(c) or ""
        if c and (c.isalnum() or c == "_"):
            v = self.lookup(self.name())
            return v or ""
        return "$"

    def word_until_brace(self) -> str:
        """The word of a modifier, expanded, up to the closing brace."""
        out: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise LexError("syntax error: missing '}'")
            c = self.peek()
            if c == "}":
                self.i += 1
                return "".join(out)
            if c == "'":
                out.append(self.single_quoted())
            elif c == '"':
                out.append(self.double_quoted())
            elif c == "$":
                out.append(self.dollar())
            elif c == self.esc:
                self.i += 1
                if self.i < len(self.s):
                    out.append(self.next())
            else:
                out.append(c)
                self.i += 1

    def braced(self) -> str:
        c = self.peek()
        if c == "}":
            raise LexError("syntax error: bad substitution")
        if c in ("@", "$") or (c and c.isdigit()):
            self.i += 1
            nm = c
        else:
            nm = self.name()
        if not nm:
            raise LexError("syntax error: bad substitution")
        value = self.lookup(nm)
        c = self.next()
        if c == "}":
            return value or ""
        if c == "":
            raise LexError("syntax error: missing '}'")
        if c == ":":
            mod = self.next()
            if mod not in ("-", "+", "?"):
                raise LexError(f"unsupported modifier ({mod}) in substitution")
            word = self.word_until_brace()
            empty = not value
            return self.modifier(nm, value, mod, word, treat_empty_as_unset=empty)
        if c in ("-", "+", "?"):
            word = self.word_until_brace()
            return self.modifier(nm, value, c, word, treat_empty_as_unset=value is None)
        if c in ("#", "%"):
            longest = self.peek() == c
            if longest:
                self.i += 1
            pat = self.word_until_brace()
            v = value or ""
            return _trim_prefix(v, pat, longest) if c == "#" else _trim_suffix(v, pat, longest)
        if c == "/":
            all_ = self.peek() == "/"
            if all_:
                self.i += 1
            raw = self.word_until_brace()
            pat, _, repl = raw.partition("/")
            v = value or ""
            if not pat:
                return v
            rx = _pattern_regex(pat, True, "")
            return rx.sub(lambda _m: repl, v, count=0 if all_ else 1)
        raise LexError(f"unsupported modifier ({c}) in substitution")

    @staticmethod
    def modifier(
        name: str, value: str | None, mod: str, word: str, treat_empty_as_unset: bool
    ) -> str:
        if mod == "-":
            return word if treat_empty_as_unset else (value or "")
        if mod == "+":
            return "" if treat_empty_as_unset else word
        # "?"
        if treat_empty_as_unset:
            if word:
                raise LexError(f"{name}: {word}")
            if value is None:
                raise LexError(f"{name}: is not allowed to be unset")
            raise LexError(f"{name}: is not allowed to be empty")
        return value or ""


def process_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand variables in C{word} and remove its quotes.

    @raise LexError: bad substitution syntax or a C{:?} failure.
    """
    result, _ = _Lexer(word, env, escape, split=False).run()
    return result


def process_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand C{word} and split it into words on unquoted whitespace (EXPOSE)."""
    _, words = _Lexer(word, env, escape, split=True).run()
    return words
