"""`docker build` transcripts compared line by line with dockerd's (issue 7).

Each L{Case} is a build context plus a few commands (real docker CLI invocations and a few
pseudo-commands that print a normalised view of an image). L{run_case} runs them against a daemon
and returns one text transcript: the command, its stdout, its stderr and its exit status, with ids,
times, sizes the daemons compute differently and temporary paths replaced by placeholders
(L{normalise}). The golden transcripts in tests/data/build_golden/ were captured from dockerd 20.10
(Debian's docker.io) with::

    .venv/bin/python -m tests.helpers.build_golden capture     # starts a private dockerd
    .venv/bin/python -m tests.helpers.build_golden compare     # dockerd and pyd side by side

tests/e2e/test_build_golden.py runs every case against pyd and compares with the golden file, so
CI (which has no dockerd) checks the comparison on every run. Where current dockerd prints
something else than 20.10, pyd follows current dockerd; L{NEWER_DOCKERD} rewrites the 20.10
golden lines accordingly before comparing (each rule says why).
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tests.helpers.daemon import DOCKER  # the 28.x CLI the goldens were captured with
from tests.helpers.images import DEFAULT_TAG, busybox_image_tar

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "data" / "build_golden"
BASE = DEFAULT_TAG

# Lines where dockerd 20.10 and a current dockerd differ; pyd prints what a current dockerd
# prints, so the golden (20.10) lines are rewritten before the comparison.
NEWER_DOCKERD: tuple[tuple[str, str, str], ...] = (
    (
        r"^(\x1b\[0m)?Removing intermediate container (<id \d+>)$",
        r"\1 ---> Removed intermediate container \2",
        "moby >= 23 (daemon/builder/dockerfile/containerbackend.go RemoveAll) prints "
        "' ---> Removed intermediate container <id>'",
    ),
    (
        r"dockerfile parse error line (\d+): ",
        r"dockerfile parse error on line \1: ",
        "current buildkit's instruction parser (instructions/parse.go parseError) says 'on line'",
    ),
    (
        r"unknown instruction: BAD$",
        r"unknown instruction: BAD (did you mean add?)",
        "current buildkit suggests the closest instruction (suggest.WrapError)",
    ),
    (
        r"Unknown flag: (\w+)$",
        r"unknown flag: --\1",
        "current buildkit (instructions/bflag.go): 'unknown flag: --name'",
    ),
    (
        r"^Invalid (containerPort|signal): ",
        r"invalid \1: ",
        "current moby (dispatchers.go parsePortSpecs, moby/sys/signal) lower-cases these",
    ),
    (
        r"failed to reach build target (\S+) in Dockerfile",
        r'target stage "\1" could not be found',
        "current moby (builder.go build) words an unknown --target so",
    ),
    (
        r'HEALTHCHECK &\{\["CMD-SHELL" "(.*?)"\] "(\w+)" "(\w+)" "(\w+)" \'\\x0(\d)\'\}',
        r"HEALTHCHECK &{Test:[CMD-SHELL \1] Interval:\2 Timeout:\3 StartPeriod:\4 "
        r"StartInterval:0s Retries:\5}",
        "current moby writes the history with %+v (dispatchers.go dispatchHealthcheck), "
        "20.10 with %q",
    ),
    (
        r'HEALTHCHECK &\{\["NONE"\] "0s" "0s" "0s" \'\\x00\'\}',
        r"HEALTHCHECK &{Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s "
        r"Retries:0}",
        "as above",
    ),
    (
        r"#\(nop\)  EXPOSE 443/tcp 53/udp 80 8000-8002",
        r"#(nop)  EXPOSE 80 443/tcp 53/udp 8000-8002",
        "current moby keeps the EXPOSE ports in the Dockerfile's order (20.10 sorted them)",
    ),
)


@attrs.frozen
class Cmd:
    """One command of a case.

    C{argv} is what follows C{docker} (C{{ctx}}, C{{tmp}} are replaced by the case's context
    and scratch directory), or a pseudo-command: C{["@config", ref]} prints the stored image
    config (from C{docker save}) reduced to what both daemons must agree on; C{["@cat", path]}
    prints a file; C{["@ps"]} lists the containers the build left behind.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = attrs.field(factory=dict)
    stdin: str | None = None


@attrs.frozen
class Case:
    """A build context and the commands run on it, in order."""

    name: str
    files: Mapping[str, str | bytes]
    cmds: tuple[Cmd, ...]
    outside: Mapping[str, str] = attrs.field(factory=dict)  # files next to the context


def _b(*argv: str, env: Mapping[str, str] | None = None, stdin: str | None = None) -> Cmd:
    return Cmd(tuple(argv), env or {}, stdin)


LEGACY = {"DOCKER_BUILDKIT": "0"}


def _add_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in (("pkg/a.txt", b"A\n"), ("pkg/sub/b.txt", b"BB\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1_700_000_000
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _inspect_cmds(tag: str) -> tuple[Cmd, ...]:
    return (
        _b("@config", tag),
        _b("@inspect", tag),
        _b("history", "--no-trunc", "--format", "{{.ID}} | {{.CreatedBy}} | {{.Comment}}", tag),
    )


_PARSE_ERROR_FILES = (
    "unknown",
    "nofrom",
    "fromargs",
    "env",
    "cmdless",
    "json",
    "copy1",
    "badflag",
    "expose",
    "healthcheck",
    "sig",
    "onbuild",
    "subst",
    "escape",
    "missingsrc",
    "outside",
)


CASES: tuple[Case, ...] = (
    Case(
        "simple",
        {
            "Dockerfile": f"FROM {BASE}\nRUN echo hello > /hi.txt && echo out\n"
            "RUN echo err >&2\nCOPY a.txt /a.txt\nENV A=1 B=two\n"
            'CMD ["sh", "-c", "cat /hi.txt"]\n',
            "a.txt": "aaa\n",
        },
        (
            _b("build", "-t", "golden-simple", "{ctx}"),
            _b("build", "-t", "golden-simple", "{ctx}", env=LEGACY),
            *_inspect_cmds("golden-simple"),
            _b("@ps"),
        ),
    ),
    Case(
        "multistage",
        {
            "Dockerfile": f"FROM {BASE} AS build\nWORKDIR /src\nCOPY a.txt .\n"
            "RUN cp a.txt b.txt\n"
            f"FROM {BASE} AS other\nRUN echo never\n"
            f"FROM {BASE}\nCOPY --from=build /src/b.txt /b.txt\nCOPY --from=0 /src /src2\n"
            'CMD ["cat", "/b.txt"]\n',
            "a.txt": "A\n",
        },
        (
            _b("build", "--target", "build", "-t", "golden-ms-build", "{ctx}"),
            _b("build", "-t", "golden-ms", "{ctx}"),
            _b("build", "--target", "nosuch", "{ctx}"),
            *_inspect_cmds("golden-ms"),
        ),
    ),
    Case(
        "args",
        {
            "Dockerfile": "ARG BASE_IMG=nosuch\nARG V1=global\n"
            "FROM ${BASE_IMG}\nARG V1\nARG V2=default2\nARG V3\n"
            "ENV E1=${V1}-e E2=${V2:-unset} E3=${V3:+set} E4=${NOPE:-fallback}\n"
            "RUN echo v1=$V1 v2=$V2 v3=$V3 e1=$E1 e4=$E4\n"
            'LABEL l1=$V1 l2="${V2} x"\nWORKDIR /w/$V2\nUSER ${V3:-root}\n',
        },
        (
            _b(
                "build",
                "--build-arg",
                f"BASE_IMG={BASE}",
                "--build-arg",
                "V3=three",
                "-t",
                "golden-args",
                "{ctx}",
            ),
            _b(
                "build",
                "--build-arg",
                f"BASE_IMG={BASE}",
                "--build-arg",
                "V3=three",
                "-t",
                "golden-args",
                "{ctx}",
            ),
            _b(
                "build",
                "--build-arg",
                f"BASE_IMG={BASE}",
                "--build-arg",
                "V3=other",
                "-t",
                "golden-args2",
                "{ctx}",
            ),
            *_inspect_cmds("golden-args"),
        ),
    ),
    Case(
        "unused_arg",
        {"Dockerfile": f"FROM {BASE}\nARG USED\nRUN echo $USED\n"},
        (
            _b(
                "build",
                "--build-arg",
                "USED=1",
                "--build-arg",
                "UNUSED=2",
                "--build-arg",
                "ALSO=3",
                "--build-arg",
                "HTTP_PROXY=http://127.0.0.1:9",
                "{ctx}",
            ),
        ),
    ),
    Case(
        "onbuild",
        {
            "Dockerfile": f"FROM {BASE}\nONBUILD COPY a.txt /onbuild-a.txt\n"
            "ONBUILD RUN echo triggered\nLABEL parent=1\n",
            "Dockerfile.child": "FROM golden-onbuild-parent\nRUN cat /onbuild-a.txt\n",
            "a.txt": "from the child context\n",
        },
        (
            _b("build", "-t", "golden-onbuild-parent", "{ctx}"),
            _b("build", "-f", "{ctx}/Dockerfile.child", "-t", "golden-onbuild-child", "{ctx}"),
            *_inspect_cmds("golden-onbuild-child"),
        ),
    ),
    Case(
        "run_fails",
        {
            "Dockerfile": f"FROM {BASE}\nENV X=1\nRUN echo before\nRUN echo oops >&2 && exit 3\n"
            "RUN echo never\n"
        },
        (
            _b("build", "-t", "golden-fail", "{ctx}"),
            _b("@ps"),
            _b("images", "--format", "{{.Repository}}:{{.Tag}}"),
            _b("build", "--force-rm", "-t", "golden-fail", "{ctx}"),
            _b("@ps"),
        ),
    ),
    Case(
        "dockerignore",
        {
            "Dockerfile": f"FROM {BASE}\nCOPY . /ctx/\nRUN find /ctx | sort\n",
            ".dockerignore": "# comment\n*.log\nsecret*\n!secret-ok.txt\ndir/**/skip\n",
            "keep.txt": "k\n",
            "a.log": "l\n",
            "secret.txt": "s\n",
            "secret-ok.txt": "ok\n",
            "dir/x/skip": "s\n",
            "dir/x/keep": "k\n",
        },
        (
            _b("build", "-t", "golden-ignore", "{ctx}"),
            _b("build", "-f", "{ctx}/Dockerfile.missing", "{ctx}"),
        ),
    ),
    Case(
        # Exceptions (moby/patternmatcher): "*" then re-inclusions, a directory excluded and
        # parts of it re-included, "**" inside and at the end; the Dockerfile and .dockerignore
        # are excluded by "*", so dockerd removes them from the context once read.
        "dockerignore_exceptions",
        {
            "Dockerfile": f"FROM {BASE}\nCOPY . /ctx/\nRUN find /ctx | sort\n",
            ".dockerignore": "*\n!keep*\n!src\nsrc/**/*.tmp\n!src/gen/want.tmp\n"
            "!sub/deep/**/ok\n!dir/\ndir/skip/\n",
            "keep.txt": "k\n",
            "keepdir/a": "a\n",
            "other.txt": "o\n",
            "src/a.c": "c\n",
            "src/x.tmp": "t\n",
            "src/gen/b.tmp": "t\n",
            "src/gen/want.tmp": "w\n",
            "sub/deep/x/ok": "ok\n",
            "sub/deep/x/no": "no\n",
            "sub/ok": "ok\n",
            "dir/in.txt": "i\n",
            "dir/skip/f": "f\n",
            "dir/skip2/f": "f\n",
        },
        (_b("build", "-t", "golden-ignore-x", "{ctx}"),),
    ),
    Case(
        # Names: "#" is a comment in column 1 only, an escaped "#", a leading "/", trailing
        # slashes, "**/" prefixes, "dir/**" with an exception; here the Dockerfile stays.
        "dockerignore_names",
        {
            "Dockerfile": f"FROM {BASE}\nCOPY . /ctx/\nRUN find /ctx | sort\n",
            ".dockerignore": "# a comment\n #hash\n\\#esc\n/abs/\n**/*.bak\n!important.bak\n"
            "trail//\ndocs/**\n!docs/keep.md\n?\n",
            "# a comment": "c\n",
            "#hash": "h\n",
            "#esc": "e\n",
            "abs/f": "a\n",
            "x/abs/f": "a\n",
            "a.bak": "b\n",
            "d/b.bak": "b\n",
            "important.bak": "i\n",
            "trail/f": "t\n",
            "docs/a.md": "a\n",
            "docs/keep.md": "k\n",
            "docs/sub/c.md": "c\n",
            "z": "z\n",
        },
        (_b("build", "-t", "golden-ignore-n", "{ctx}"),),
    ),
    Case(
        "add_tar",
        {
            "Dockerfile": f"FROM {BASE}\nADD pkg.tar /opt/\nADD pkg.tar /raw.tar/\n"
            "COPY pkg.tar /copied/\nRUN find /opt /raw.tar /copied | sort\n",
            "pkg.tar": _add_tar(),
        },
        (_b("build", "-t", "golden-add", "{ctx}"), *_inspect_cmds("golden-add")),
    ),
    Case(
        "dockerfile_outside",
        {"f.txt": "F\n"},
        (
            _b("build", "-f", "{tmp}/Dockerfile.outside", "-t", "golden-outside", "{ctx}"),
            _b("build", "-f", "{tmp}/Dockerfile.outside", "-t", "golden-outside", "{ctx}"),
        ),
        outside={"Dockerfile.outside": f"FROM {BASE}\nCOPY . /ctx/\nRUN ls -a /ctx\n"},
    ),
    Case(
        "options",
        {"Dockerfile": f"FROM {BASE}\nRUN echo one\nLABEL in.file=yes\nWORKDIR /w\nRUN echo two\n"},
        (
            _b("build", "--rm=false", "-t", "golden-opt", "{ctx}"),
            _b("@ps"),
            _b(
                "build",
                "--no-cache",
                "--label",
                "from.cli=1",
                "--label",
                "b=2",
                "-t",
                "golden-opt",
                "{ctx}",
            ),
            _b("build", "--force-rm", "-t", "golden-opt", "{ctx}"),
            _b("build", "-q", "-t", "golden-opt", "{ctx}"),
            _b("build", "-q", "--no-cache", "{ctx}", env=LEGACY),
            _b("build", "--iidfile", "{tmp}/iid", "-t", "golden-opt", "{ctx}"),
            _b("@cat", "{tmp}/iid"),
            *_inspect_cmds("golden-opt"),
        ),
    ),
    Case(
        "chown_quiet_fail",
        {
            "Dockerfile": f"FROM {BASE}\nUSER app\nCOPY a.txt /a.txt\n"
            "COPY --chown=app:app a.txt /b.txt\nCOPY --chown=1000 dir /dir\n"
            "RUN stat -c '%u:%g %a %n' /a.txt /b.txt /dir /dir/sub /dir/sub/c.txt && id\n"
            "RUN echo to stdout && exit 7\n",
            "a.txt": "A\n",
            "dir/sub/c.txt": "C\n",
        },
        (
            _b("build", "-q", "-t", "golden-quiet", "{ctx}"),
            _b("build", "-t", "golden-quiet", "{ctx}"),
        ),
    ),
    Case(
        "copy_forms",
        {
            "Dockerfile": f"FROM {BASE}\nWORKDIR /app\nCOPY *.txt ./all/\nCOPY dir/ sub\n"
            'ADD dir /added\nCOPY ["with space.txt", "/spaced/"]\n'
            "ARG NODEFAULT\nARG WITHDEF=d\nRUN find /app /added /spaced | sort\n",
            "one.txt": "1\n",
            "two.txt": "2\n",
            "with space.txt": "s\n",
            "dir/x/y.txt": "y\n",
        },
        (
            _b("build", "--build-arg", "NODEFAULT=given", "-t", "golden-copy", "{ctx}"),
            *_inspect_cmds("golden-copy"),
        ),
    ),
    Case(
        "metadata",
        {
            "Dockerfile": f"FROM {BASE}\nMAINTAINER Jane Doe <jane@example.com>\n"
            "HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --retries=4 "
            "CMD wget -q -O- http://localhost/ || exit 1\n"
            'USER app:app\nWORKDIR /srv\nWORKDIR data\nVOLUME /data ["/cache"]\n'
            'VOLUME ["/v1", "/v2"]\n'
            "EXPOSE 80 443/tcp 53/udp 8000-8002\n"
            'SHELL ["/bin/sh", "-ec"]\nRUN echo shell=$0 && id\n'
            "STOPSIGNAL SIGQUIT\n"
            'ENTRYPOINT ["/bin/echo"]\nCMD ["hello"]\n'
            "HEALTHCHECK NONE\n"
            'LABEL multi.a=1 \\\n      multi.b="two words"\n',
        },
        (_b("build", "-t", "golden-meta", "{ctx}"), *_inspect_cmds("golden-meta")),
    ),
    Case(
        "shell_forms",
        {
            "Dockerfile": f"FROM {BASE}\nENTRYPOINT echo entry\nCMD echo cmd\n"
            'RUN ["/bin/echo", "exec", "form"]\n'
            "# a comment\nRUN echo a \\\n  && echo b\n"
            "ENV OLD value with spaces\n",
        },
        (_b("build", "-t", "golden-forms", "{ctx}"), *_inspect_cmds("golden-forms")),
    ),
    Case(
        "empty",
        {},
        (
            _b("build", "{ctx}"),
            _b("build", "-f", "-", "{ctx}", stdin=""),
            _b("build", "-f", "-", "{ctx}", stdin="# only a comment\n"),
            _b("build", "-t", "golden-stdin", "-", stdin=f"FROM {BASE}\nLABEL stdin=1\n"),
            _b("build", "-f", "-", "{ctx}", stdin=f"FROM {BASE}\nCOPY . /x/\n"),
            _b("build", "-f", "-", "{ctx}", stdin=f"FROM {BASE}\nCOPY nothing /x/\n"),
            _b("build", "-f", "-", "{ctx}", stdin="FROM scratch\n"),
            _b("build", "-f", "-", "{ctx}", stdin="FROM scratch\nLABEL a=b\n"),
        ),
    ),
    Case(
        "parse_errors",
        {
            "Dockerfile.unknown": f"FROM {BASE}\n\nBOGUS x\n",
            "Dockerfile.nofrom": "RUN echo x\n",
            "Dockerfile.fromargs": "FROM a b\n",
            "Dockerfile.env": f"FROM {BASE}\nENV ONLYKEY\n",
            "Dockerfile.cmdless": f"FROM {BASE}\nRUN\n",
            "Dockerfile.json": f'FROM {BASE}\nCMD ["unterminated\n',
            "Dockerfile.copy1": f"FROM {BASE}\nCOPY onlyone\n",
            "Dockerfile.badflag": f"FROM {BASE}\nCOPY --nope=1 a b\n",
            "Dockerfile.expose": f"FROM {BASE}\nEXPOSE notaport\n",
            "Dockerfile.healthcheck": f"FROM {BASE}\nHEALTHCHECK --interval=x CMD true\n",
            "Dockerfile.sig": f"FROM {BASE}\nSTOPSIGNAL SIGNOPE\n",
            "Dockerfile.onbuild": f"FROM {BASE}\nONBUILD FROM x\n",
            "Dockerfile.subst": f"FROM {BASE}\nENV A=${{B:?must be set}}\n",
            "Dockerfile.escape": f"# escape=`\nFROM {BASE}\nLABEL a=1 `\n  b=2\nBAD`\n  x\n",
            "Dockerfile.missingsrc": f"FROM {BASE}\nCOPY nosuch.txt /x\n",
            "Dockerfile.outside": f"FROM {BASE}\nCOPY ../x /x\n",
            "Dockerfile.nobase": "FROM pyd-test/nosuch-image:1\n",
        },
        tuple(_b("build", "-f", "{ctx}/Dockerfile." + n, "{ctx}") for n in _PARSE_ERROR_FILES),
    ),
)


# --- normalisation ---------------------------------------------------------------------------

_HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
_HEX12 = re.compile(r"\b[0-9a-f]{12}\b")
_DOCKERFILE_NAME = re.compile(r"\.dockerfile\.[0-9a-f]{20}\b")
# The CLI's own progress line: its figure is the last progress update, not always the total.
_SENDING = re.compile(r"^(Sending build context to Docker daemon  )\S+$", re.M)
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


class Normaliser:
    """Replaces ids by C{<id N>} (numbered by first appearance, so a reused id keeps its number)
    and the case's scratch directory by C{<tmp>}."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.ids: dict[str, int] = {}

    def _id(self, m: re.Match[str]) -> str:
        key = m.group(0)[:12]
        n = self.ids.setdefault(key, len(self.ids) + 1)
        return f"<id {n}>"

    def __call__(self, text: str) -> str:
        text = text.replace(os.path.realpath(self.tmp), "<tmp>").replace(self.tmp, "<tmp>")
        # Where a RUN's stderr is cut into writes is up to the pipe: join adjacent red chunks.
        text = text.replace("\x1b[0m\x1b[91m", "")
        text = _DOCKERFILE_NAME.sub(".dockerfile.<random>", text)
        text = _HEX64.sub(self._id, text)
        text = _HEX12.sub(self._id, text)
        text = _TIME.sub("<time>", text)
        text = _SENDING.sub(r"\1<size>", text)
        return text


def normalise(text: str, tmp: str) -> str:
    """L{Normaliser} for one text."""
    return Normaliser(tmp)(text)


_FORWARDING_WARNING = " ---> [Warning] IPv4 forwarding is disabled. Networking will not work."


def apply_newer_dockerd(golden: str) -> str:
    """The 20.10 golden transcript with L{NEWER_DOCKERD}'s rewrites applied."""
    lines = []
    for line in golden.split("\n"):
        if line == _FORWARDING_WARNING:
            continue  # the recording dockerd runs with --ip-forward=false: not part of the answer
        for pattern, repl, _why in NEWER_DOCKERD:
            line = re.sub(pattern, repl, line)
        lines.append(line)
    return "\n".join(lines)


# --- running -------------------------------------------------------------------------------------


def _docker(
    host: str, config_dir: str, argv: Sequence[str], env: Mapping[str, str] = {}, stdin=None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "DOCKER_HOST": host, "DOCKER_CONFIG": config_dir, **env}
    for k in ("DOCKER_CONTEXT", "DOCKER_BUILDKIT", "DOCKER_API_VERSION"):
        if k not in env:
            full.pop(k, None)
    return subprocess.run(
        [DOCKER, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=full,
    )


def _saved_config(host: str, cfgdir: str, ref: str, tmp: str) -> dict[str, Any]:
    out = os.path.join(tmp, "save.tar")
    r = _docker(host, cfgdir, ["save", "-o", out, ref])
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    with tarfile.open(out) as tf:
        mf = tf.extractfile("manifest.json")
        assert mf is not None
        cfg_name = json.load(mf)[0]["Config"]
        cf = tf.extractfile(cfg_name)
        assert cf is not None
        cfg: dict[str, Any] = json.load(cf)
    os.unlink(out)
    return cfg


def _config_view(cfg: dict[str, Any]) -> str:
    """What of a stored image config both daemons must agree on (history as plain lines)."""
    view = {
        "author": cfg.get("author"),
        "config": cfg.get("config"),
        "container": "<id>" if cfg.get("container") else cfg.get("container"),
        "container_config": _container_config_view(cfg.get("container_config")),
        "docker_version": "<version>" if cfg.get("docker_version") else None,
        "rootfs_layers": len((cfg.get("rootfs") or {}).get("diff_ids") or []),
        "os": cfg.get("os"),
        "architecture": cfg.get("architecture"),
    }
    lines = [json.dumps(view, indent=1, sort_keys=True)]
    for h in cfg.get("history") or []:
        extra = "".join(f" | {k}={h[k]!r}" for k in ("empty_layer", "author", "comment") if k in h)
        lines.append(f"history: {h.get('created_by', '')}{extra}")
    return "\n".join(lines)


def _container_config_view(cc: dict[str, Any] | None) -> Any:
    if not cc:
        return cc
    cc = dict(cc)
    if cc.get("Hostname"):
        cc["Hostname"] = "<hostname>"
    return cc


def _inspect_view(host: str, cfgdir: str, ref: str) -> str:
    """`docker image inspect` fields both daemons must agree on (API 1.41, as 20.10 speaks)."""
    r = _docker(host, cfgdir, ["image", "inspect", ref], env={"DOCKER_API_VERSION": "1.41"})
    if r.returncode != 0:
        return r.stderr
    info = json.loads(r.stdout)[0]
    view = {
        k: info.get(k)
        for k in ("RepoTags", "Parent", "Comment", "Author", "Config", "Architecture", "Os")
    }
    view["Container"] = "<id>" if info.get("Container") else info.get("Container")
    view["ContainerConfig"] = _container_config_view(info.get("ContainerConfig"))
    view["DockerVersion"] = "<version>" if info.get("DockerVersion") else ""
    view["RootFS"] = {
        "Type": info["RootFS"]["Type"],
        "Layers": len(info["RootFS"].get("Layers") or []),
    }
    return json.dumps(view, indent=1, sort_keys=True)


def _ps(host: str, cfgdir: str) -> str:
    r = _docker(host, cfgdir, ["ps", "-a", "--no-trunc", "--format", "{{.Command}} {{.Image}}"])
    return "".join(sorted(r.stdout.splitlines(keepends=True)))


def run_case(host: str, case: Case, tmp: str) -> str:
    """Run C{case} against the daemon at C{host} in the scratch directory C{tmp}; return the
    normalised transcript."""
    ctx = os.path.join(tmp, "ctx")
    os.makedirs(ctx, exist_ok=True)
    for name, content in case.files.items():
        p = os.path.join(ctx, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    for name, content in case.outside.items():
        with open(os.path.join(tmp, name), "w") as f:
            f.write(content)
    cfgdir = os.path.join(tmp, "docker-config")
    norm = Normaliser(tmp)
    out: list[str] = []

    def sub(s: str) -> str:
        return s.replace("{ctx}", ctx).replace("{tmp}", tmp)

    for cmd in case.cmds:
        argv = [sub(a) for a in cmd.argv]
        env_note = "".join(f"{k}={v} " for k, v in sorted(cmd.env.items()))
        shown = " ".join(cmd.argv)
        stdin_note = f" <<< {cmd.stdin!r}" if cmd.stdin is not None else ""
        out.append(f"$ {env_note}docker {shown}{stdin_note}")
        if argv[0] == "@config":
            out.append(_config_view(_saved_config(host, cfgdir, argv[1], tmp)))
            continue
        if argv[0] == "@inspect":
            out.append(_inspect_view(host, cfgdir, argv[1]))
            continue
        if argv[0] == "@cat":
            with open(argv[1]) as f:
                out.append(f.read())
            continue
        if argv[0] == "@ps":
            out.append(_ps(host, cfgdir))
            continue
        r = _docker(host, cfgdir, argv, cmd.env, cmd.stdin)
        out.append("[stdout]")
        out.append(r.stdout)
        out.append("[stderr]")
        out.append(r.stderr)
        out.append(f"[exit {r.returncode}]")
    return "\n".join(norm(x.rstrip("\n")) if x else x for x in out) + "\n"


def reset(host: str, keep: str = BASE) -> None:
    """Remove every container and every image but C{keep} (children before parents)."""
    cfgdir = tempfile.mkdtemp(prefix="golden-cfg-")
    try:
        ids = _docker(host, cfgdir, ["ps", "-aq"]).stdout.split()
        if ids:
            _docker(host, cfgdir, ["rm", "-f", *ids])
        keep_id = _docker(host, cfgdir, ["image", "inspect", "--format", "{{.Id}}", keep])
        for _ in range(20):
            imgs = _docker(host, cfgdir, ["images", "-a", "-q", "--no-trunc"]).stdout.split()
            imgs = [i for i in dict.fromkeys(imgs) if i != keep_id.stdout.strip()]
            if not imgs:
                return
            _docker(host, cfgdir, ["rmi", "-f", *imgs])
        raise RuntimeError("could not remove the images of the previous case")
    finally:
        shutil.rmtree(cfgdir, ignore_errors=True)


def load_base(host: str) -> None:
    """Load the offline busybox test image under L{BASE}."""
    with tempfile.TemporaryDirectory(prefix="golden-bb-") as d:
        path = os.path.join(d, "bb.tar")
        busybox_image_tar(path)
        r = _docker(host, os.path.join(d, "cfg"), ["load", "-q", "-i", path])
        if r.returncode != 0:
            raise RuntimeError(r.stderr)


def golden_path(case: Case) -> Path:
    """Where a case's golden transcript lives."""
    return GOLDEN_DIR / f"{case.name}.txt"


def diff(expected: str, actual: str, label: str = "") -> str:
    """A unified diff of two transcripts ('' when equal)."""
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            f"dockerd{label}",
            f"pyd{label}",
        )
    )


def _scratch() -> str:
    # A fixed-length name, so that nothing in a transcript depends on the random part.
    return tempfile.mkdtemp(prefix="golden-", dir="/tmp")


def _each(cases: Sequence[Case], names: Sequence[str]) -> list[Case]:
    if not names:
        return list(cases)
    return [c for c in cases if c.name in names]


def start_hosts(
    dockerd: bool,
    pyd: bool,
    dockerd_host: str | None,
    pyd_host: str | None,
    stops: list[Callable[[], None]],
) -> dict[str, str] | None:
    """The daemons a recorder compares ({"dockerd": host, "pyd": host}), each a running one
    given by its host or one started here (its stop appended to C{stops}); None when a dockerd
    is wanted and none is installed."""
    from bench.common import start_dockerd, start_pyd

    hosts: dict[str, str] = {}
    if dockerd:
        if dockerd_host:
            hosts["dockerd"] = dockerd_host
        else:
            d = start_dockerd()
            if d is None:
                print("dockerd is not installed (apt-get install docker.io)", file=sys.stderr)
                return None
            stops.append(d.stop)
            hosts["dockerd"] = d.host
    if pyd:
        if pyd_host:
            hosts["pyd"] = pyd_host
        else:
            p = start_pyd()
            stops.append(p.stop)
            hosts["pyd"] = p.host
    return hosts


def main(argv: Sequence[str] | None = None) -> int:
    """C{capture} the golden files from a private dockerd, or C{compare} dockerd with pyd."""

    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("capture", "compare", "pyd"))
    ap.add_argument("cases", nargs="*")
    ap.add_argument("--dockerd-host", help="use a running dockerd instead of starting one")
    ap.add_argument("--pyd-host", help="use a running pyd instead of starting one")
    a = ap.parse_args(argv)
    cases = _each(CASES, a.cases)
    stops: list[Callable[[], None]] = []
    try:
        started = start_hosts(
            a.mode in ("capture", "compare"), a.mode in ("compare", "pyd"),
            a.dockerd_host, a.pyd_host, stops,
        )  # fmt: skip
        if started is None:
            return 2
        hosts = started
        for h in hosts.values():
            if _docker(h, "/tmp", ["image", "inspect", BASE]).returncode != 0:
                load_base(h)
        failed = 0
        for case in cases:
            got: dict[str, str] = {}
            for name, h in hosts.items():
                reset(h)
                tmp = _scratch()
                try:
                    got[name] = run_case(h, case, tmp)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
            if a.mode == "capture":
                GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
                golden_path(case).write_text(got["dockerd"])
                print(f"wrote {golden_path(case)}")
                continue
            expected = (
                apply_newer_dockerd(got["dockerd"])
                if "dockerd" in got
                else apply_newer_dockerd(golden_path(case).read_text())
            )
            dd = diff(expected, got["pyd"], f"/{case.name}")
            print(f"== {case.name}: {'same' if not dd else 'DIFFERS'}")
            if dd:
                failed += 1
                print(dd)
        return 1 if failed else 0
    finally:
        for stop in reversed(stops):
            stop()


if __name__ == "__main__":
    sys.exit(main())
