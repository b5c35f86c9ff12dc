"""The registered OCI runtimes (layer: drivers): each runtime's binary, its global arguments and
its own state root, and the set a daemon runs containers with (L{RuntimeSet}).

The set is resolved once at start (binaries looked up on C{PATH}); a container's runtime is
chosen by name (C{HostConfig.Runtime}) and the same record is used for every later operation
on that run (start, kill, exec, pause, update, delete, restore).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping

import attrs


def _strs(v: Iterable[str]) -> tuple[str, ...]:
    return tuple(v)


@attrs.frozen
class OciRuntime:
    """One registered OCI runtime: the name a container asks for (C{HostConfig.Runtime}), its
    binary, the global arguments it gets before every command (daemon.json C{runtimeArgs}) and
    its own state root (so C{crun} and C{runc} never read each other's state)."""

    name: str
    path: str
    root: str
    args: tuple[str, ...] = attrs.field(default=(), converter=_strs)

    def argv(self, *command: str) -> list[str]:
        """The runtime's command line for C{command} (C{--root} last, so it always wins)."""
        return [self.path, *self.args, "--root", self.root, *command]

    def conmon_args(self) -> list[str]:
        """conmon's C{-r} and C{--runtime-arg}s for this runtime (conmon puts them before the
        runtime's subcommand, as L{argv} does)."""
        out = ["-r", self.path]
        for arg in (*self.args, "--root", self.root):
            out += ["--runtime-arg", arg]
        return out

    @property
    def label(self) -> str:
        """How dockerd's errors name the runtime's create failure (C{runc create failed},
        C{crun})."""
        base = os.path.basename(self.path)
        return f"{base} create failed" if base == "runc" else base


class RuntimeUnavailable(ValueError):
    """A configured runtime's binary is not there (the daemon does not start)."""


@attrs.frozen
class RuntimeSet:
    """The runtimes containers may name: C{runtimes} by name, the C{default} name, and what
    C{docker info} shows of each (the path as configured, the runtimeArgs)."""

    runtimes: Mapping[str, OciRuntime]
    default: str
    shown: Mapping[str, tuple[str, tuple[str, ...]]] = attrs.field(factory=dict)

    def get(self, name: str) -> OciRuntime | None:
        """The runtime called C{name} ("" = the default), None when there is none."""
        return self.runtimes.get(name or self.default)

    @property
    def names(self) -> tuple[str, ...]:
        """Every registered name."""
        return tuple(self.runtimes)

    @classmethod
    def resolve(
        cls,
        table: Mapping[str, tuple[str, tuple[str, ...]]],
        configured: frozenset[str] | set[str],
        default: str,
        exec_root: str,
        which: Callable[[str], str | None] = shutil.which,
    ) -> RuntimeSet:
        """Look each runtime's binary up (blocking; at start).

        @param table: name -> (path or binary name, runtimeArgs): the stock runtimes and the
            configured ones.
        @param configured: the names daemon.json or C{--add-runtime} gave (a missing binary is
            an error for these, while a stock runtime that is not installed is left out).
        @raise RuntimeUnavailable: a configured runtime, or the default, is not installed.
        """
        found: dict[str, OciRuntime] = {}
        shown: dict[str, tuple[str, tuple[str, ...]]] = {}
        for name, (path, args) in table.items():
            binary = which(path)
            if binary is None:
                if name in configured:
                    raise RuntimeUnavailable(
                        f"runtime {name}: {path} is not an executable file on this host"
                    )
                continue
            if name == "crun":
                root = os.path.join(exec_root, "crun")  # where pyd always kept crun's state
            elif name == "io.containerd.runc.v2" and name not in configured:
                root = os.path.join(exec_root, "runtime-runc")  # dockerd's alias of runc
            else:
                root = os.path.join(exec_root, "runtime-" + name)
            found[name] = OciRuntime(name, os.path.abspath(binary), root, args)
            shown[name] = (path, args)
        if default not in found:
            raise RuntimeUnavailable(
                f"default runtime {default}: {table.get(default, (default,))[0]} is not "
                "installed on this host"
            )
        return cls(found, default, shown)
