"""The classic builder: runs a parsed Dockerfile step by step (layer: engine).

Each step starts from the previous step's image. The cache is the classic builder's: a step is
reused when an image exists whose parent is the current image and whose cache key (the run config
with the step's command, plus for COPY/ADD the digest of the copied files) matches. RUN steps run in
a real container (L{BuildContainers}); COPY/ADD write into a fresh writable layer; the other
instructions only change the image config. Progress is reported through L{BuildProgress} as the
text dockerd prints (C{Step 1/5 : ...}, C{ ---> Running in ...}).
"""

from __future__ import annotations

import copy
import errno
import os
import posixpath
import secrets
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import CancelledError
from twisted.logger import Logger

from pyd.core.errors import InvalidParameter, PydError
from pyd.core.records import Image
from pyd.core.seams import Blocking, Clock
from pyd.core.telemetry import (
    BUILD_CANCELED,
    BUILD_COMMANDS_FAILED,
    BUILD_DOCKERFILE_EMPTY,
    BUILD_DOCKERFILE_SYNTAX,
    BUILD_TARGET_NOT_REACHABLE,
    BUILD_UNKNOWN_INSTRUCTION,
)
from pyd.engine.builder import frontend, fs, lexer, mounts, scratch
from pyd.engine.builder.base import (
    DEFAULT_PATH,
    PROXY_ARGS,
    BuildArgs,
    BuildCancelled,
    BuildContainers,
    BuildFailed,
    BuildOptions,
    BuildProgress,
    BuildResult,
    ImagePuller,
    PreparedBuild,
    _check_signal,
    _env_map,
    _env_pairs,
    _go_healthcheck,
    _go_quote_list,
    _goarch,
    _parse_port_specs,
    _prune_dirs,
    _StageState,
    short_id,
    split_tag,
    step_host_config,
)
from pyd.engine.builder.parser import (
    DockerfileError,
    Instruction,
    Stage,
    parse,
)
from pyd.engine.builder.runstep import CacheLocks
from pyd.engine.builder.steps import _BuildSteps
from pyd.engine.contracts import BuildImages

log = Logger()

# What containerd's platforms.Parse takes as a platform of one component: an OS or an
# architecture (with its aliases)
_KNOWN = frozenset(
    ("linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix",
     "android", "ios", "plan9", "js", "wasip1", "amd64", "x86_64", "x86-64", "arm64", "aarch64",
     "arm", "armhf", "armel", "386", "i386", "ppc64le", "s390x", "riscv64", "mips64", "mips64le",
     "loong64")
)  # fmt: skip

__all__ = [
    "BuildContainers",
    "BuildFailed",
    "BuildOptions",
    "BuildProgress",
    "BuildResult",
    "BuildService",
    "ImagePuller",
    "step_host_config",
]


# --- the service -----------------------------------------------------------------------------


class BuildService:
    """Runs classic builds. One instance per daemon; builds may run concurrently."""

    def __init__(
        self,
        images: BuildImages,
        containers: BuildContainers | None,
        io: Blocking,
        root: str,
        clock: Clock,
        puller: ImagePuller | None = None,
        docker_version: str = "",
        cache_root: str = "",
        allow_insecure: bool = False,
        allow_host_network: bool = True,
        max_context_size: int = 0,
        max_layer_size: int = 0,
        keep_free: int = 0,
        memory_root: str = "",
        experimental: bool = False,
    ) -> None:
        # --experimental: dockerd's classic builder squashes then; pyd's does not (a refusal
        # that says so, not dockerd's "only supported with experimental mode")
        self.experimental = experimental
        # Small contexts are unpacked here, in memory (pyd.engine.builder.scratch; "": never).
        self.memory_root = memory_root
        # max-build-context-size: expanded bytes of an uploaded context (0: no limit)
        self.max_context_size = max_context_size
        # max-layer-size: bytes an ADD may unpack from a local archive (0: no limit)
        self.max_layer_size = max_layer_size
        # min-free-space: bytes the data root's filesystem keeps free; the context upload and
        # each step stop below it (0: no reserve)
        self.keep_free = keep_free
        self.docker_version = docker_version  # written into built images, as dockerd does
        # RUN --mount=type=cache directories, kept between builds (builder prune reclaims them).
        self.cache = mounts.CacheStore(cache_root or root.rstrip("/") + "-cache")
        self.cache_locks = CacheLocks()
        # daemon.json builder.entitlements: RUN --security=insecure, RUN --network=host
        self.allow_insecure = allow_insecure
        self.allow_host_network = allow_host_network
        self.images = images
        self.containers = containers
        self.puller = puller
        self.io = io
        self.root = root
        self.clock = clock
        # Builds whose scratch directory is in use (prepared, running, or being removed): prune
        # must not take it from under them.
        self._live: set[str] = set()
        # dockerd's builder metrics (builder_builds_triggered_total, builder_builds_failed_total
        # by reason): called with None when a build starts, with moby's reason when one fails.
        self.on_build: list[Callable[[str | None], None]] = []

    def _count(self, reason: str | None) -> None:
        for hook in self.on_build:
            hook(reason)

    # .. preparation (errors here are plain HTTP errors) ..........................................

    async def prepare(self, body: Any, options: BuildOptions) -> PreparedBuild:
        """Unpack the context, read and parse the Dockerfile, check the options.

        @raise InvalidParameter: bad options, a bad context or a bad Dockerfile.
        """
        if options.squash and self.experimental:
            raise InvalidParameter("squash is not supported by pyd, in experimental mode too")
        if options.squash:
            raise InvalidParameter("squash is only supported with experimental mode")
        if options.platform and "/" not in options.platform and options.platform not in _KNOWN:
            # containerd's platforms.Parse, which dockerd runs on the parameter
            raise InvalidParameter(
                f'"{options.platform}": unknown operating system or architecture: invalid argument'
            )
        if options.platform and options.platform not in ("linux", f"linux/{_goarch()}"):
            raise InvalidParameter(
                f'"{options.platform}": unsupported platform (this daemon builds '
                f"linux/{_goarch()} only)"
            )
        self._count(None)  # moby's BuildManager.Build counts here, after the router's checks
        build_id = secrets.token_hex(16)
        workdir = os.path.join(self.root, build_id)
        context = os.path.join(workdir, "context")
        self._live.add(build_id)
        try:
            await self.io.run(os.makedirs, workdir, 0o700)
            context = await self.io.run(
                scratch.context_dir, self.memory_root, workdir, build_id, body
            )
            context = await self._unpack(body, workdir, context)
            raw = await self.io.run(fs.read_dockerfile, context, options.dockerfile)
            await self.io.run(fs.apply_dockerignore, context, (fs.clean_rel(options.dockerfile),))
            if not raw:
                self._count(BUILD_DOCKERFILE_EMPTY)
                raise InvalidParameter(f"the Dockerfile ({options.dockerfile}) cannot be empty")
            try:
                df = parse(raw)
            except DockerfileError as e:
                unknown = "unknown instruction" in str(e)
                self._count(BUILD_UNKNOWN_INSTRUCTION if unknown else BUILD_DOCKERFILE_SYNTAX)
                raise e.for_file(options.dockerfile) from None
            if not df.stages:
                self._count(BUILD_DOCKERFILE_EMPTY)
                raise InvalidParameter(f"the Dockerfile ({options.dockerfile}) cannot be empty")
            if options.target and not any(s.name == options.target.lower() for s in df.stages):
                # dockerd 20.10: "failed to reach build target x in Dockerfile"
                self._count(BUILD_TARGET_NOT_REACHABLE)
                raise InvalidParameter(f'target stage "{options.target}" could not be found')
            # A Dockerfile sent from outside the context (.dockerfile.<hex>) is not part of it.
            if os.path.basename(options.dockerfile).startswith(".dockerfile."):
                await self.io.run(fs.remove_dockerfile, context, options.dockerfile)
        except BaseException:
            try:
                await self.io.run(_remove_scratch, workdir, context)
            finally:
                self._live.discard(build_id)
            raise
        return PreparedBuild(build_id, workdir, context, df, options)

    async def _unpack(self, body: Any, workdir: str, context: str) -> str:
        """Unpack the upload into C{context}; return where it is. A context in memory that
        meets a full tmpfs (something else filled it meanwhile) is unpacked on disk instead."""
        if not scratch.in_memory(self.memory_root, context):
            await self.io.run(
                fs.extract_context, body, context, self.max_context_size, self.keep_free
            )
            return context
        try:
            # the min-free-space reserve is the data root's: the tmpfs is not on it
            await self.io.run(fs.extract_context, body, context, self.max_context_size, 0)
            return context
        except fs.BuildFileError as e:
            cause = e.__cause__
            if not (isinstance(cause, OSError) and cause.errno == errno.ENOSPC):
                raise
        await self.io.run(scratch.remove, context)
        on_disk = os.path.join(workdir, "context")
        await self.io.run(os.makedirs, on_disk, 0o700)
        await self.io.run(fs.extract_context, body, on_disk, self.max_context_size, self.keep_free)
        return on_disk

    async def start(self) -> None:
        """At daemon start: no build runs yet, so no in-memory context is anyone's."""
        await self.io.run(scratch.sweep, self.memory_root)

    async def stop(self) -> None:
        """At daemon stop: the in-memory contexts' directory goes once it is empty."""
        await self.io.run(scratch.release, self.memory_root)

    async def discard(self, prepared: PreparedBuild) -> None:
        """Remove a prepared build's scratch directory."""
        try:
            await self.io.run(_remove_scratch, prepared.workdir, prepared.context)
        finally:
            self._live.discard(prepared.build_id)

    # .. running ...................................................................................

    async def run(self, prepared: PreparedBuild, progress: BuildProgress) -> BuildResult:
        """Run every step, tag the result; the scratch directory is removed at the end.

        @raise BuildFailed: a step failed (message as dockerd's, code for RUN).
        """
        try:
            mode = prepared.options.network_mode
            if mode.startswith("container:") and mode[10:] and self.containers is not None:
                # Resolved once, here: every RUN step joins this same container, whatever the
                # name or prefix comes to mean while the build runs.
                pinned = "container:" + self.containers.resolve_id(mode[10:])
                prepared = attrs.evolve(
                    prepared, options=attrs.evolve(prepared.options, network_mode=pinned)
                )
            try:
                return await _Build(self, prepared, progress).run()
            except (CancelledError, BuildCancelled):
                self._count(BUILD_CANCELED)
                raise
            except PydError:  # a step's failure (BuildFailed), a base image not found...
                self._count(BUILD_COMMANDS_FAILED)
                raise
        finally:
            # Removing a large context takes a while: do not hold the response for it.
            d = self.io.run(_remove_scratch, prepared.workdir, prepared.context)
            d.addErrback(lambda f: log.failure("removing {path}", f, path=prepared.workdir))
            d.addBoth(lambda _: self._live.discard(prepared.build_id))

    async def prune(self) -> tuple[list[str], int]:
        """Remove leftover scratch directories of builds and the cache mounts no running step
        uses; return (ids, bytes reclaimed)."""
        ids, size = await self.io.run(_prune_dirs, self.root, frozenset(self._live))
        mids, msize = await self.io.run(scratch.sweep, self.memory_root, frozenset(self._live))
        cids, csize = await self.io.run(self.cache.prune)
        return ids + sorted(set(mids) - set(ids)) + cids, size + msize + csize

    def info_counts(self) -> Any:
        """The system area's contributor protocol: builds count nothing in C{/info}."""
        from twisted.internet.defer import succeed

        return succeed({})

    def disk_usage(self) -> Any:
        """C{/system/df}'s C{BuildCache}: the cache mounts kept between builds."""
        d = self.io.run(self.cache.usage)
        d.addCallback(lambda records: {"build_cache": records})
        return d


class _Build(_BuildSteps):
    """One run of a prepared build."""

    # .. driver ....................................................................................

    async def run(self) -> BuildResult:
        try:
            return await self._run_stages()
        except BaseException:
            if self.opts.quiet and self.quiet_output:
                self.out.stream("".join(self.quiet_output))
            raise

    async def _run_stages(self) -> BuildResult:
        stages = list(self.df.stages)
        if self.opts.target:
            idx = next(i for i, s in enumerate(stages) if s.name == self.opts.target.lower())
            stages = stages[: idx + 1]
        extra_labels = [
            Instruction(cmd="label", original=f"LABEL {k}={v}", line=0, pairs=((k, v),))
            for k, v in sorted(self.opts.labels.items())
        ]
        total = len(self.df.meta_args) + len(stages) + sum(len(s.commands) for s in stages)
        total += len(extra_labels)
        step = 0

        # BuildKit's automatic platform ARGs live in the global scope (FROM sees them; a stage
        # gets one with a bare `ARG TARGETARCH`).
        auto = frontend.platform_args()
        meta: dict[str, str | None] = dict(auto)
        for a in self.df.meta_args:
            step += 1
            self.say(f"Step {step}/{total} : {a.original}\n")
            for k, default in a.pairs:
                if k in self.opts.build_args and self.opts.build_args[k] is not None:
                    meta[k] = self.opts.build_args[k]
                elif default is not None:
                    meta[k] = self._expand(default, _env_pairs(meta))
                else:
                    meta[k] = auto.get(k)
                self.used_args.add(k)

        state: _StageState | None = None
        for n, stage in enumerate(stages):
            if stage.name and stage.name in self.stage_names:
                raise BuildFailed(f"{stage.name} stage name already used")
            step += 1
            self.say(f"Step {step}/{total} : {stage.original}\n")
            self._check_cancel()
            state = await self._from(stage, meta)
            self.say(f" ---> {short_id(state.image_id)}\n")
            commands = list(stage.commands)
            if n == len(stages) - 1:
                commands += extra_labels
            for inst in commands:
                step += 1
                self.say(f"Step {step}/{total} : {inst.original}\n")
                self._check_cancel()
                await self._dispatch_with_cleanup(state, inst)
                self.say(f" ---> {short_id(state.image_id)}\n")
            if state.image_id:
                self.out.aux(state.image_id)
            self.used_args |= state.args.referenced
            self.stage_results.append(state)
            if stage.name:
                self.stage_names[stage.name] = len(self.stage_results) - 1
        unused = sorted(
            k for k in self.opts.build_args if k not in self.used_args and k not in PROXY_ARGS
        )
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        assert state is not None
        if not state.image_id:
            raise BuildFailed("No image was generated. Is your Dockerfile empty?")
        self.say(f"Successfully built {short_id(state.image_id)}\n")
        tagged = []
        for t in self.opts.tags:
            repo, tag = split_tag(t)
            name = await self.svc.images.tag(state.image_id, repo, tag or "latest")
            tagged.append(name)
            self.say(f"Successfully tagged {name}\n")
        if self.opts.quiet:
            self.out.stream(state.image_id + "\n")
        return BuildResult(state.image_id, tuple(tagged))

    async def _dispatch_with_cleanup(self, state: _StageState, inst: Instruction) -> None:
        ok = False
        gone = False
        if inst.cmd in ("run", "copy", "add"):
            await self._check_free_space()
        try:
            await self._dispatch(state, inst)
            ok = True
        except CancelledError:
            # The client went away and the HTTP layer cancelled the build wherever it was
            # waiting (a RUN's log, its start, a commit): the step's container must go as for
            # a cancel seen between steps, or it stays listed (that made interrupted builds flaky).
            gone = True
            raise
        finally:
            if self.opts.force_rm or (self.opts.rm and ok) or gone:
                await self._remove_containers()

    # .. FROM ......................................................................................

    async def _from(self, stage: Stage, meta: dict[str, str | None]) -> _StageState:
        env = _env_pairs(meta)
        name = self._expand(stage.base, env)
        if not name:
            raise BuildFailed(f"base name ({stage.base}) should not be blank")
        if stage.platform:
            try:
                frontend.check_platform(self._expand(stage.platform, env))
            except frontend.FrontendError as e:
                raise BuildFailed(f"FROM --platform: {e}") from None
        args = BuildArgs(self.opts.build_args, meta)
        parent_stage = self.stage_names.get(name.lower())
        image: Image | None
        if parent_stage is not None:
            image = self.stage_results[parent_stage].image
        elif name == "scratch":
            image = None
        else:
            image = await self._get_image(name)
        if image is None:
            base: dict[str, Any] = {
                "architecture": _goarch(),
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }
        else:
            base = copy.deepcopy(image.config)
        config = copy.deepcopy(base.get("config") or {})
        env_list = list(config.get("Env") or [])
        if "PATH" not in _env_map(env_list):
            env_list.append(f"PATH={DEFAULT_PATH}")
        config["Env"] = env_list
        config["OpenStdin"] = False
        config["StdinOnce"] = False
        state = _StageState(
            image=image,
            image_id=image.id if image else "",
            config=config,
            base_config=base,
            args=args,
            name=stage.name,
        )
        triggers = list(config.get("OnBuild") or [])
        if triggers:
            config["OnBuild"] = None
            self.say(
                f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n"
            )
            from pyd.engine.builder.parser import parse_trigger

            for trig in triggers:
                try:
                    inst = parse_trigger(trig, self.esc)
                except DockerfileError as e:
                    raise BuildFailed(e.detail) from None
                await self._dispatch_with_cleanup(state, inst)
        return state

    # .. dispatch ........................................................................................

    async def _dispatch(self, st: _StageState, inst: Instruction) -> None:
        c = inst.cmd
        env = self._stage_env(st)
        cfg = st.config
        if c == "env":
            parts = []
            cur = list(cfg.get("Env") or [])
            for k, v in inst.pairs:
                key = self._expand(k, env)
                val = self._expand(v or "", env)
                nv = f"{key}={val}"
                parts.append(nv)
                for i, e in enumerate(cur):
                    if e.partition("=")[0] == key:
                        cur[i] = nv
                        break
                else:
                    cur.append(nv)
            cfg["Env"] = cur
            await self._commit_meta(st, "ENV " + " ".join(parts))
        elif c == "label":
            labels = dict(cfg.get("Labels") or {})
            parts = []
            for k, v in inst.pairs:
                key = self._expand(k, env) if inst.line else k
                val = self._expand(v or "", env) if inst.line else (v or "")
                labels[key] = val
                parts.append(f"{key}={val}")
            cfg["Labels"] = labels
            await self._commit_meta(st, "LABEL " + " ".join(parts))
        elif c == "maintainer":
            st.maintainer = inst.args[0]
            await self._commit_meta(st, "MAINTAINER " + inst.args[0])
        elif c == "arg":
            parts = []
            for k, default in inst.pairs:
                dv = None
                if default is not None and not (
                    k in self.opts.build_args and self.opts.build_args[k] is not None
                ):
                    dv = self._expand(default, env)
                elif default is not None:
                    dv = default
                st.args.declare(k, dv)
                parts.append(k if default is None else f"{k}={default}")
            await self._commit_meta(st, "ARG " + " ".join(parts))
        elif c == "workdir":
            path = self._expand(inst.args[0], env)
            cur_wd = cfg.get("WorkingDir") or "/"
            wd = path if path.startswith("/") else posixpath.join(cur_wd, path)
            cfg["WorkingDir"] = wd
            await self._workdir(st, wd)
        elif c == "user":
            cfg["User"] = self._expand(inst.args[0], env)
            await self._commit_meta(st, f"USER {cfg['User']}")
        elif c == "volume":
            vols = dict(cfg.get("Volumes") or {})
            expanded = []
            for v in inst.args:
                ev = self._expand(v, env)
                if not ev:
                    raise BuildFailed("VOLUME specified can not be an empty string")
                vols[ev] = {}
                expanded.append(ev)
            cfg["Volumes"] = vols
            await self._commit_meta(st, f"VOLUME [{' '.join(expanded)}]")
        elif c == "expose":
            words: list[str] = []
            for p in inst.args:
                try:
                    words.extend(lexer.process_words(p, env, self.esc))
                except lexer.LexError as e:
                    raise BuildFailed(str(e)) from None
            try:
                ports = _parse_port_specs(words)
            except InvalidParameter as e:
                raise BuildFailed(str(e)) from None
            exposed = dict(cfg.get("ExposedPorts") or {})
            for p in ports:
                exposed[p] = {}
            cfg["ExposedPorts"] = exposed
            await self._commit_meta(st, "EXPOSE " + " ".join(words))
        elif c == "stopsignal":
            sig = self._expand(inst.args[0], env)
            _check_signal(sig)
            cfg["StopSignal"] = sig
            await self._commit_meta(st, f"STOPSIGNAL {sig}")
        elif c in ("cmd", "entrypoint"):
            argv = self._cmdline(cfg, inst)
            if c == "cmd":
                cfg["Cmd"] = argv
                await self._commit_meta(st, f"CMD {_go_quote_list(argv)}")
                if inst.args:
                    st.cmd_set = True
            else:
                cfg["Entrypoint"] = argv
                if not st.cmd_set:
                    cfg["Cmd"] = None
                await self._commit_meta(st, f"ENTRYPOINT {_go_quote_list(argv)}")
        elif c == "shell":
            cfg["Shell"] = list(inst.args)
            await self._commit_meta(st, f"SHELL [{' '.join(inst.args)}]")
        elif c == "healthcheck":
            hc = self._healthcheck(inst)
            old = (cfg.get("Healthcheck") or {}).get("Test")
            if old and old[0] != "NONE":
                self.say(f"Note: overriding previous HEALTHCHECK: [{' '.join(old)}]\n")
            cfg["Healthcheck"] = hc
            await self._commit_meta(st, f"HEALTHCHECK {_go_healthcheck(hc)}")
        elif c == "onbuild":
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), inst.trigger]
            await self._commit_meta(st, "ONBUILD " + inst.trigger)
        elif c == "run":
            await self._run(st, inst)
        elif c in ("copy", "add"):
            await self._copy(st, inst, env)
        else:  # pragma: no cover - the parser only yields known instructions
            raise BuildFailed(f"unsupported command: {c}")


def _remove_scratch(workdir: str, context: str) -> None:
    """A build's scratch directory and its context (which may be in memory, elsewhere)."""
    fs.remove_tree(workdir)
    if not context.startswith(workdir.rstrip("/") + "/"):
        scratch.remove(context)
