"""The versions of the programs containers run with: the default OCI runtime and the init, as
dockerd reports them in C{docker version}'s Components and C{docker info}'s RuncCommit and
InitCommit (layer: engine).

Read once, by running C{<binary> --version} through the process seam, and parsed as moby v28.5.2
does (daemon/info_unix.go C{parseRuntimeVersion}, C{parseInitVersion}); a binary that cannot
tell is left out, as dockerd leaves it out (it logs a warning).
"""

from __future__ import annotations

import os

import attrs
from twisted.logger import Logger

from pyd.drivers.process import ProcessRunner

log = Logger()


@attrs.frozen
class Component:
    """One program: its name as dockerd lists it (the runtime's registered name, the init's
    file name), its version and its git commit."""

    name: str
    version: str
    commit: str


def parse_runtime_version(text: str) -> tuple[str, str]:
    """(version, commit) of C{runc --version} / C{crun --version} output ("" when absent)."""
    version = commit = ""
    for line in text.strip().splitlines():
        if "version" in line:
            version = line.split("version")[-1].strip()
        elif line.startswith("commit:"):
            commit = line.removeprefix("commit:").strip()
    return version, commit


def parse_init_version(text: str) -> tuple[str, str]:
    """(version, commit) of C{tini --version} output: C{tini version 0.19.0 - git.de40ad0}."""
    parts = text.split(" - ")
    commit = ""
    if len(parts) >= 2:
        git = parts[1].strip().split(".")
        if len(git) == 2 and git[0] == "git":
            commit = git[1]
    head = parts[0].strip()
    version = head.removeprefix("tini version ") if head.startswith("tini version ") else ""
    return version, commit


@attrs.frozen
class Components:
    """The default runtime's and the init's versions (None: it told none)."""

    runtime: Component | None = None
    init: Component | None = None

    @property
    def listed(self) -> tuple[Component, ...]:
        """Those known, in dockerd's order (runtime, then init)."""
        return tuple(c for c in (self.runtime, self.init) if c is not None)


class ComponentVersions:
    """Reads the versions on first use and keeps them (the binaries do not change while the
    daemon runs)."""

    def __init__(
        self, runner: ProcessRunner, runtime: tuple[str, str] | None, init_path: str
    ) -> None:
        """@param runtime: (name, binary) of the default runtime (None: none known)."""
        self._runner = runner
        self._runtime = runtime
        self._init = init_path
        self._known: Components | None = None

    async def components(self) -> Components:
        """The default runtime's and the init's versions (each when it told one)."""
        if self._known is not None:
            return self._known
        runtime = init = None
        if self._runtime is not None:
            name, binary = self._runtime
            v, c = parse_runtime_version(await self._version_text(binary))
            if v or c:
                runtime = Component(name, v, c)
        if self._init:
            v, c = parse_init_version(await self._version_text(self._init))
            if v or c:
                init = Component(os.path.basename(self._init), v, c)
        self._known = Components(runtime, init)
        return self._known

    async def _version_text(self, binary: str) -> str:
        try:
            result = await self._runner.run([binary, "--version"])
        except OSError as e:
            log.warn("{binary} --version: {err}", binary=binary, err=e)
            return ""
        if result.rc != 0:
            log.warn("{binary} --version failed (rc {rc})", binary=binary, rc=result.rc)
            return ""
        return result.stdout.decode("utf-8", "replace")
