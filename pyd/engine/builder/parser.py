"""Dockerfile parsing: physical lines to instructions, grouped into stages (layer: engine).

What the classic builder accepts (BuildKit's parser, which dockerd's classic builder uses too):
parser directives (C{# escape=}, C{# check=}, and C{# syntax=} naming the built-in frontend
C{docker/dockerfile:1}/C{1.x}/C{labs}; any other frontend image is refused) at the top; comment lines anywhere (also inside a
continuation); the escape token at the end of a line continues it (leading whitespace of continuation
lines is kept); heredocs (C{<<EOF}, C{<<-EOF}, quoted delimiters) for RUN, COPY and ADD; JSON (exec)
form for RUN/CMD/ENTRYPOINT/SHELL/COPY/ADD/VOLUME; C{--flag=value} flags. Errors read
C{dockerfile parse error on line N: ...} like dockerd's.

Variable substitution is not done here: it needs the build state (ENV/ARG so far), so the builder
applies L{pyd.engine.builder.lexer} when it dispatches each instruction.
"""

from __future__ import annotations

import json
import re

import attrs

from pyd.core.errors import InvalidParameter
from pyd.engine.builder.frontend import FrontendError, check_syntax

_DIRECTIVE = re.compile(r"^\s*#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_COMMENT = re.compile(r"^\s*#")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")

INSTRUCTIONS = (
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck", "label",
    "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
)  # fmt: skip
_HEREDOC_CMDS = ("run", "copy", "add")

# Flags each instruction accepts (value None = boolean flag allowed bare).
_FLAGS: dict[str, tuple[str, ...]] = {
    "from": ("platform",),
    "copy": ("from", "chown", "chmod", "link", "parents", "exclude"),
    "add": ("chown", "chmod", "link", "checksum", "keep-git-dir", "exclude", "unpack"),
    "run": ("mount", "network", "security", "device"),
    "healthcheck": ("interval", "timeout", "start-period", "start-interval", "retries"),
}
_BOOL_FLAGS = ("link", "parents", "keep-git-dir", "unpack")


class DockerfileError(InvalidParameter):
    """A Dockerfile that cannot be parsed (HTTP 400, printed by the CLI).

    C{kind} says how dockerd words it: C{"instruction"} (an instruction's arguments:
    C{dockerfile parse error on line N: ...}), C{"parser"} (the line parser itself: the build
    prints C{failed to parse <Dockerfile name>: ...}, see L{for_file}) or C{"plain"} (the
    message alone, e.g. C{no build stage in current context}).
    """

    def __init__(self, line: int, message: str, kind: str = "instruction") -> None:
        if kind == "instruction":
            super().__init__(f"dockerfile parse error on line {line}: {message}")
        else:
            super().__init__(message)
        self.line = line
        self.detail = message
        self.kind = kind

    def for_file(self, name: str) -> InvalidParameter:
        """The error as the build reports it for the Dockerfile C{name}."""
        if self.kind == "parser":
            return InvalidParameter(f"failed to parse {name}: {self.detail}")
        return self


@attrs.frozen
class Heredoc:
    """One here-document body: C{expand} is false when the delimiter was quoted."""

    name: str
    content: str
    expand: bool = True


@attrs.frozen
class Instruction:
    """One instruction as parsed; which fields are set depends on C{cmd}.

    C{cmd} is lower-case; C{original} is the source text (continuations joined), what the builder
    prints in C{Step N/M : ...}. C{args} holds the words (exec form: the JSON array; shell form of
    RUN/CMD/ENTRYPOINT: one string). C{pairs} holds ENV/LABEL/ARG key/value pairs (value None for an
    ARG without default).
    """

    cmd: str
    original: str
    line: int
    args: tuple[str, ...] = ()
    json_form: bool = False
    flags: tuple[tuple[str, str], ...] = ()
    pairs: tuple[tuple[str, str | None], ...] = ()
    heredocs: tuple[Heredoc, ...] = ()
    trigger: str = ""  # ONBUILD: the trigger's source text

    def flag(self, name: str, default: str = "") -> str:
        """The last value given for C{--name} (or C{default})."""
        found = default
        for k, v in self.flags:
            if k == name:
                found = v
        return found

    def flag_all(self, name: str) -> list[str]:
        """Every value given for a repeatable flag."""
        return [v for k, v in self.flags if k == name]

    def has_flag(self, name: str) -> bool:
        """Whether C{--name} was given at all."""
        return any(k == name for k, _ in self.flags)


@attrs.frozen
class Stage:
    """A FROM and the instructions under it."""

    index: int
    base: str  # unexpanded image reference (may contain $VARs from global ARGs)
    name: str  # lower-cased stage name, "" when unnamed
    platform: str
    original: str
    line: int
    commands: tuple[Instruction, ...]


@attrs.frozen
class Dockerfile:
    """The parse result: global ARGs (before the first FROM), the stages, the escape token."""

    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    escape: str
    warnings: tuple[str, ...] = ()
    syntax: str = ""  # the `# syntax=` directive (always the built-in frontend here)
    check: str = ""  # the `# check=` directive (BuildKit's lint rules: accepted, not run)


# --- physical lines ---------------------------------------------------------------------------


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    found: dict[str, str] = {}
    for i, raw in enumerate(lines):
        m = _DIRECTIVE.match(raw)
        if not m:
            break
        key = m.group(1).lower()
        if key not in ("escape", "syntax", "check"):
            break
        if key in found:
            raise DockerfileError(i + 1, f"only one {key} parser directive can be used", "parser")
        found[key] = m.group(2)
    return found, 0


def _continuation(line: str, escape: str) -> tuple[str, bool]:
    """Strip a trailing escape (+ blanks); return (text, is_end_of_line)."""
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        return stripped[: -len(escape)], False
    return line, True


def parse_words(rest: str, escape: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes in the words (ENV/LABEL/ARG)."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    in_word = False
    i = 0
    n = len(rest)
    while i < n:
        ch = rest[i]
        if not in_word and not quote:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
            i += 1
            continue
        if ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word = []
            blank_ok = False
            in_word = False
            i += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
        if ch == escape:
            if i + 1 == n:
                i += 1
                continue
            word.append(ch)
            i += 1
            ch = rest[i]
        word.append(ch)
        i += 1
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def _extract_flags(rest: str, line: int) -> tuple[list[tuple[str, str]], str]:
    """Leading C{--name[=value]} words; returns (flags, remaining text)."""
    flags: list[tuple[str, str]] = []
    s = rest.lstrip()
    while s.startswith("--"):
        # A flag word ends at unquoted whitespace.
        i = 0
        quote = ""
        while i < len(s):
            c = s[i]
            if quote:
                if c == quote:
                    quote = ""
            elif c in ("'", '"'):
                quote = c
            elif c.isspace():
                break
            i += 1
        word, s = s[:i], s[i:].lstrip()
        if word == "--":
            break
        body = word[2:]
        name, eq, value = body.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in ("'", '"'):
            value = value[1:-1]
        if not eq:
            value = "true" if name in _BOOL_FLAGS else "\x00"
        flags.append((name, value))
    return flags, s


def _maybe_json(rest: str) -> list[str] | None:
    """The JSON array of strings C{rest} holds, or None (shell form).

    @raise ValueError: a JSON array holding something other than strings.
    """
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def valid_file_name(name: str) -> bool:
    """Whether C{name} names one file: not empty, no C{/} or NUL, not C{.} or C{..}."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\x00" not in name


def _heredoc_names(rest: str) -> list[tuple[str, bool, bool]]:
    """(name, expand, chomp) for each heredoc marker word in C{rest}."""
    out = []
    for w in parse_words(rest, "\\"):
        m = _HEREDOC.match(w)
        if not m:
            continue
        raw = m.group(3)
        if not raw:
            continue
        quoted = any(q in raw for q in ("'", '"'))
        name = raw.replace("'", "").replace('"', "")
        out.append((name, not quoted, m.group(2) == "-"))
    return out


def parse(text: str | bytes) -> Dockerfile:
    """Parse a Dockerfile.

    @raise DockerfileError: with the line number, as dockerd words it.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    directives, _ = _directives(lines)
    escape = directives.get("escape", "\\")
    if "syntax" in directives:
        try:
            check_syntax(directives["syntax"])
        except FrontendError as e:
            raise DockerfileError(1, str(e), "plain") from None
    if escape not in ("\\", "`"):
        raise DockerfileError(
            1, f"invalid escape token '{escape}' does not match ` or \\", "parser"
        )
    warnings: list[str] = []
    nodes: list[Instruction] = []
    i = 0
    n = len(lines)
    while i < n:
        raw = lines[i]
        i += 1
        start = i
        if _COMMENT.match(raw) or not raw.strip():
            continue
        line, eol = _continuation(raw.lstrip(), escape)
        empty_cont = False
        while not eol and i < n:
            nxt = lines[i]
            i += 1
            if _COMMENT.match(nxt):
                continue
            if not nxt.strip():
                empty_cont = True
                continue
            part, eol = _continuation(nxt, escape)
            line += part
        if empty_cont:
            warnings.append(f"[WARNING]: Empty continuation line found in: {line.strip()}")
        if not line.strip():
            continue
        inst, i = _parse_line(line, start, i, lines, escape)
        nodes.append(inst)
    if not nodes:
        raise DockerfileError(n, "file with no instructions", "parser")
    df = _group(nodes, escape, tuple(warnings))
    return attrs.evolve(df, syntax=directives.get("syntax", ""), check=directives.get("check", ""))


def parse_duration(value: str) -> int:
    """A Go duration (C{30s}, C{1m30s}, C{500ms}) in nanoseconds.

    @raise ValueError: with Go's C{time: invalid duration "x"}.
    """
    units = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}  # fmt: skip
    if value in ("", "0"):
        return 0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
    if not parts or "".join(a + b for a, b in parts) != value:
        raise ValueError(f'time: invalid duration "{value}"')
    return int(sum(float(n) * units[u] for n, u in parts))


def _read_heredocs(
    names: list[tuple[str, bool, bool]], i: int, lines: list[str], line_no: int
) -> tuple[tuple[Heredoc, ...], int]:
    docs = []
    for name, expand, chomp in names:
        body: list[str] = []
        while True:
            if i >= len(lines):
                raise DockerfileError(line_no, "unterminated heredoc", "parser")
            cur = lines[i]
            i += 1
            check = cur.lstrip("\t") if chomp else cur
            if check == name:
                break
            body.append(check)
        content = "\n".join(body) + ("\n" if body else "")
        docs.append(Heredoc(name=name, content=content, expand=expand))
    return tuple(docs), i


def _parse_line(
    line: str, start: int, i: int, lines: list[str], escape: str
) -> tuple[Instruction, int]:
    stripped = line.strip()
    parts = re.split(r"\s+", stripped, maxsplit=1)
    word = parts[0]
    cmd = word.lower()
    rest = parts[1] if len(parts) > 1 else ""
    original = stripped
    if cmd not in INSTRUCTIONS:
        hint = _suggest(cmd)
        raise DockerfileError(
            start, f"unknown instruction: {word}" + (f" (did you mean {hint}?)" if hint else "")
        )
    heredocs: tuple[Heredoc, ...] = ()
    if cmd in _HEREDOC_CMDS or (
        cmd == "onbuild" and rest.split()[:1] and rest.split()[0].lower() in _HEREDOC_CMDS
    ):
        _flags, after = _extract_flags(rest if cmd != "onbuild" else "", start)
        target = rest if cmd == "onbuild" else after
        if not target.lstrip().startswith("["):
            names = _heredoc_names(target)
            if names:
                heredocs, i = _read_heredocs(names, i, lines, start)
    inst = _build_instruction(cmd, rest, original, start, escape, heredocs)
    return inst, i


def _suggest(cmd: str) -> str:
    best, dist = "", 3
    for cand in INSTRUCTIONS:
        d = _levenshtein(cmd, cand)
        if d < dist:
            best, dist = cand, d
    return best


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _check_flags(cmd: str, flags: list[tuple[str, str]], line: int) -> None:
    allowed = _FLAGS.get(cmd, ())
    seen: set[str] = set()
    for name, value in flags:
        if name not in allowed:
            raise DockerfileError(line, f"unknown flag: --{name}")
        if name in seen and name not in ("mount", "exclude", "device"):
            raise DockerfileError(line, f"duplicate flag specified: {name}")
        seen.add(name)
        if value == "\x00":
            raise DockerfileError(line, f"missing a value on flag: {name}")


def _build_instruction(
    cmd: str, rest: str, original: str, line: int, escape: str, heredocs: tuple[Heredoc, ...]
) -> Instruction:
    name = cmd.upper()
    flags, rest = _extract_flags(rest, line)
    _check_flags(cmd, flags, line)
    rest = rest.strip()
    common = {
        "cmd": cmd,
        "original": original,
        "line": line,
        "flags": tuple(flags),
        "heredocs": heredocs,
    }

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise DockerfileError(line, msg)

    if cmd in ("run", "cmd", "entrypoint", "shell"):
        try:
            js = _maybe_json(rest)
        except ValueError as e:
            raise DockerfileError(line, str(e), "parser") from None
        if cmd == "shell":
            need(js is not None, "SHELL requires the arguments to be in JSON form")
            need(bool(js), "SHELL requires at least one argument")
        if js is not None:
            return Instruction(args=tuple(js), json_form=True, **common)  # type: ignore[arg-type]  # common fields are a dict[str, object] of the known Instruction fields
        return Instruction(args=(rest,) if rest else (), **common)  # type: ignore[arg-type]  # common fields are a dict[str, object] of the known Instruction fields
    if cmd in ("copy", "add", "volume"):
        try:
            js = _maybe_json(rest)
        except ValueError as e:
            raise DockerfileError(line, str(e)) from None
        words = js if js is not None else rest.split()
        if cmd == "volume":
            need(bool(words), "VOLUME requires at least one argument")
        else:
            need(
                len(words) + (1 if heredocs and len(words) == 1 else 0) >= 2
                or (len(words) >= 1 and bool(heredocs)),
                f"{name} requires at least two arguments, but only one was provided. "
                "Destination could not be determined",
            )
            if heredocs and _HEREDOC.match(words[-1]):
                raise DockerfileError(line, f"{name} cannot accept a heredoc as destination")
            for doc in heredocs:
                # The name is what the body is copied as: one file name, never a path.
                need(
                    valid_file_name(doc.name),
                    f"{name} heredoc name {doc.name!r} is not a valid file name "
                    "(it must not contain / or be . or ..)",
                )
        return Instruction(args=tuple(words), json_form=js is not None, **common)  # type: ignore[arg-type]  # common fields are a dict[str, object] of the known Instruction fields
    if cmd in ("env", "label"):
        need(bool(rest), f"{name} requires at least one argument")
        pairs = _name_vals(rest, name, escape, line)
        return Instruction(pairs=tuple(pairs), **common)  # type: ignore[arg-type]  # common fields are a dict[str, object] of the known Instruction fields
    if cmd == "arg":
        words = parse_words(rest, escape)
        need(bool(words), "ARG requires at least one argument")
        arg_pairs: list[tuple[str, str | None]] = []
        for w in words:
            k, eq, v = w.partition("=")
            need(bool(k), "ARG names can not be blank")
            arg_pairs.append((k, v if eq else None))
        return Instruction(pairs=tuple(arg_pairs), **common)  # type: ignore[arg-type]  # common fields are a dict[str, object] of the known Instruction fields
    if cmd in ("from", "expose"):
        words = rest.split()
        if cmd == "from":
            need(len(words) in (1, 3), "FROM requires either one or three arguments")
            if len(words) == 3:
                need(words[1].lower() == "as", "FROM requires either one or three arguments")
                stage = words[2].lower()
                need(
                    bool(_STAGE_NAME.match(stage)),
                    f'invalid name for build stage: "{words[2]}", name can\'t start with a '
                    "number or contain symbols",
                )
        else:
            need(bool(words), "EXPOSE requires at least one argument")
        return Instruction(args=tuple(words), **common)  # type: ignore[arg-type]  # common fields are a dict[str, object] of the known Instruction fields
    if cmd in ("workdir", "user", "stopsignal", "maintainer"):
        need(bool(rest), f"{name} requires exactly one argument")
        return Instruction(args=(rest,), **common)  # type: ignore[arg-type]  # common fields are a dict[str, object] of the known Instruction fields
    if cmd == "healthcheck":
        words = rest.split(None, 1)
        need(bool(words), "HEALTHCHECK requires at least one argument")
        kind = words[0].upper()
        if kind == "NONE":
            need(len(words) == 1, "HEALTHCHECK NONE takes no arguments")
            return Instruction(args=("NONE",), **common)  # type: ignore[arg-type]  # common fields are a dict[str, object] of the known Instruction fields
        need(kind == "CMD", f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
        body = words[1].strip() if len(words) > 1 else ""
        need(bool(body), "Missing command after HEALTHCHECK CMD")
        try:
            js = _maybe_json(body)
        except ValueError as e:
            raise DockerfileError(line, str(e)) from None
        test = ("CMD", *js) if js is not None else ("CMD-SHELL", body)
        hc = Instruction(args=test, json_form=js is not None, **common)  # type: ignore[arg-type]  # common fields are a dict[str, object] of the known Instruction fields
        # dockerd checks the durations and retries when it parses the instruction.
        for flag in ("interval", "timeout", "start-period", "start-interval"):
            if hc.has_flag(flag):
                try:
                    d = parse_duration(hc.flag(flag))
                except ValueError as e:
                    raise DockerfileError(line, str(e)) from None
                if d and d < 10**6:
                    raise DockerfileError(line, f'Interval "{flag}" cannot be less than 1ms')
        if hc.has_flag("retries"):
            value = hc.flag("retries")
            if not re.fullmatch(r"[+-]?\d+", value):
                raise DockerfileError(line, f'strconv.ParseInt: parsing "{value}": invalid syntax')
            if int(value) < 0:
                raise DockerfileError(line, f"--retries cannot be negative ({int(value)})")
        return hc
    # onbuild
    need(bool(rest), "ONBUILD requires at least one argument")
    trig = rest.split(None, 1)[0].upper()
    if trig == "ONBUILD":
        raise DockerfileError(line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trig in ("FROM", "MAINTAINER"):
        raise DockerfileError(line, f"{trig} isn't allowed as an ONBUILD trigger")
    # Validate the trigger now so a bad one fails this build, not the child's.
    _build_instruction(
        trig.lower(),
        rest.split(None, 1)[1] if len(rest.split(None, 1)) > 1 else "",
        rest,
        line,
        escape,
        heredocs,
    )
    return Instruction(trigger=rest, **common)  # type: ignore[arg-type]  # common fields are a dict[str, object] of the known Instruction fields


def _name_vals(rest: str, key: str, escape: str, line: int) -> list[tuple[str, str | None]]:
    words = parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = re.split(r"\s+", rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(line, f"{key} must have two arguments", "parser")
        return [(parts[0], parts[1])]
    out: list[tuple[str, str | None]] = []
    for w in words:
        if "=" not in w:
            raise DockerfileError(
                line,
                f'Syntax error - can\'t find = in "{w}". Must be of the form: name=value',
                "parser",
            )
        k, _, v = w.partition("=")
        out.append((k, v))
    return out


def _group(nodes: list[Instruction], escape: str, warnings: tuple[str, ...]) -> Dockerfile:
    meta: list[Instruction] = []
    stages: list[Stage] = []
    current: dict[str, object] | None = None
    commands: list[Instruction] = []

    def close() -> None:
        if current is not None:
            stages.append(Stage(commands=tuple(commands), **current))  # type: ignore[arg-type]  # common fields are a dict[str, object] of the known Instruction fields

    for node in nodes:
        if node.cmd == "from":
            close()
            commands = []
            words = node.args
            current = {
                "index": len(stages),
                "base": words[0],
                "name": words[2].lower() if len(words) == 3 else "",
                "platform": node.flag("platform"),
                "original": node.original,
                "line": node.line,
            }
            continue
        if current is None:
            if node.cmd == "arg":
                meta.append(node)
                continue
            raise DockerfileError(node.line, "no build stage in current context", "plain")
        commands.append(node)
    close()
    return Dockerfile(meta_args=tuple(meta), stages=tuple(stages), escape=escape, warnings=warnings)


def parse_trigger(text: str, escape: str = "\\") -> Instruction:
    """Parse one ONBUILD trigger (stored in an image config) as an instruction.

    @raise DockerfileError: the trigger does not parse.
    """
    lines = text.split("\n")
    line, _ = _continuation(lines[0].strip(), escape)
    inst, _ = _parse_line(line, 1, 1, lines, escape)
    return inst
