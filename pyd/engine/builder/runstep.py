"""A RUN step's BuildKit options at run time: its mounts (cache, bind, tmpfs, the shebang heredoc
script), network and security modes, turned into the step container's C{HostConfig} additions
(layer: engine).

L{StepMounts} prepares every host source before the container is created (all daemon-made, see
L{pyd.engine.builder.mounts}), holds cache locks while the step runs, and removes the mount-target
stubs the runtime created before the step is committed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import DeferredLock

from pyd.core.seams import Blocking
from pyd.engine.builder import fs, mounts
from pyd.engine.builder.frontend import NO_SESSION, Mount, RunOptions
from pyd.engine.builder.parser import valid_file_name

# (root, layer to drop afterwards or "") of a stage or image named by from=
RootOf = Callable[[str], Awaitable[tuple[str, str]]]
DropLayer = Callable[[str], Awaitable[None]]


class StepRefused(ValueError):
    """A RUN option this build may not use (the message is shown to the user)."""


class CacheLocks:
    """One lock per cache directory, for C{sharing=locked} (shared by every build)."""

    def __init__(self) -> None:
        self._locks: dict[str, DeferredLock] = {}

    def get(self, key: str) -> DeferredLock:
        """The lock of cache directory C{key}."""
        return self._locks.setdefault(key, DeferredLock())


class StepMounts:
    """The mounts of one RUN step; C{close()} releases them (always call it)."""

    def __init__(
        self,
        io: Blocking,
        cache: mounts.CacheStore,
        locks: CacheLocks,
        context: str,
        scratch: str,
        root_of: RootOf,
        drop_layer: DropLayer,
    ) -> None:
        self.io = io
        self.cache = cache
        self.locks = locks
        self.context = context
        self.scratch = scratch
        self.root_of = root_of
        self.drop_layer = drop_layer
        self.host_mounts: list[dict[str, Any]] = []
        self.targets: list[str] = []
        self.stubs: list[str] = []
        self._held: list[DeferredLock] = []
        self._in_use: list[str] = []
        self._dirs: list[str] = []

    async def prepare(self, opts: RunOptions) -> None:
        """Make every mount's host source.

        @raise StepRefused: a secret/ssh mount that is required; @raise mounts.MountError: a
            source that cannot be mounted.
        """
        for m in opts.mounts:
            if m.type in ("secret", "ssh"):
                if m.required:
                    what = "secret" if m.type == "secret" else "SSH agent socket"
                    raise StepRefused(f"RUN --mount=type={m.type}: " + NO_SESSION.format(what=what))
                continue  # an optional one is simply absent, as with BuildKit
            if m.type == "tmpfs":
                spec: dict[str, Any] = {"Type": "tmpfs", "Target": m.target}
                if m.size:
                    spec["TmpfsOptions"] = {"SizeBytes": m.size}
                self.host_mounts.append(spec)
            elif m.type == "cache":
                self.host_mounts.append(await self._cache(m))
            else:
                self.host_mounts.append(await self._bind(m))
            self.targets.append(m.target)

    async def script(self, name: str, content: str) -> str:
        """A shebang heredoc (BuildKit runs it as a file): written into a daemon-made directory
        mounted read-only at C{/dev/pipes}; returns the path the step runs."""
        d = os.path.join(self.scratch, "pipes-" + secrets.token_hex(8))
        fname = name if valid_file_name(name) else "script"

        def write() -> None:
            os.makedirs(d, 0o755)
            fd = os.open(os.path.join(d, fname), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
            try:
                os.write(fd, content.encode())
                os.fchmod(fd, 0o755)
            finally:
                os.close(fd)

        await self.io.run(write)
        self.host_mounts.append(
            {"Type": "bind", "Source": d, "Target": "/dev/pipes", "ReadOnly": True}
        )
        return "/dev/pipes/" + fname

    async def _cache(self, m: Mount) -> dict[str, Any]:
        key = self.cache.key_of(m)
        if m.source and not m.from_:
            raise mounts.MountError(
                "RUN --mount=type=cache: source= needs from= (a subdirectory of the cache itself "
                "is not supported)"
            )
        if m.sharing == "locked":
            lock = self.locks.get(key)
            await lock.acquire()
            self._held.append(lock)
        elif m.sharing == "private" and self.cache.in_use.get(key, 0) > 0:
            key = key + "-" + secrets.token_hex(4)
        self.cache.in_use[key] = self.cache.in_use.get(key, 0) + 1
        self._in_use.append(key)
        seed: tuple[str, str] | None = None
        layer = ""
        try:
            if m.from_:
                root, layer = await self.root_of(m.from_)
                seed = (root, m.source or "/")
            path = await self.io.run(self.cache.open, m, key, seed)
        finally:
            if layer:
                await self.drop_layer(layer)
        return {"Type": "bind", "Source": path, "Target": m.target, "ReadOnly": m.readonly}

    async def _bind(self, m: Mount) -> dict[str, Any]:
        root, layer = self.context, ""
        try:
            if m.from_:
                root, layer = await self.root_of(m.from_)
            path = await self.io.run(mounts.bind_copy, root, m.source or "/", self.scratch)
        finally:
            if layer:
                await self.drop_layer(layer)
        self._dirs.append(os.path.dirname(path) if not os.path.isdir(path) else path)
        return {"Type": "bind", "Source": path, "Target": m.target, "ReadOnly": m.readonly}

    async def find_stubs(self, rootfs: str) -> None:
        """Note which mount targets the step's root filesystem lacks (before it runs)."""
        if self.targets:
            self.stubs = await self.io.run(mounts.missing_targets, rootfs, list(self.targets))

    async def clean(self, rootfs: str) -> None:
        """Remove the runtime's stubs for those targets (after it ran, before the commit)."""
        if self.stubs:
            await self.io.run(mounts.remove_stubs, rootfs, list(self.stubs), list(self.targets))

    async def close(self) -> None:
        """Release cache locks and in-use marks; drop the bind copies."""
        for key in self._in_use:
            n = self.cache.in_use.get(key, 0) - 1
            if n > 0:
                self.cache.in_use[key] = n
            else:
                self.cache.in_use.pop(key, None)
        self._in_use = []
        while self._held:
            self._held.pop().release()
        for d in self._dirs:
            await self.io.run(fs.remove_tree, d)
        self._dirs = []


def step_overrides(opts: RunOptions, network_mode: str) -> dict[str, Any]:
    """The C{HostConfig} keys a RUN's C{--network}/C{--security} change (C{network_mode} is the
    build's own mode)."""
    out: dict[str, Any] = {}
    if opts.network == "none":
        out["NetworkMode"] = "none"
    elif opts.network == "host":
        out["NetworkMode"] = "host"
    elif opts.network == "default":
        out["NetworkMode"] = network_mode
    if opts.security == "insecure":
        out["Privileged"] = True
    return out
