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
import hashlib
import json
import os
import platform as _platform
import posixpath
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
from twisted.logger import Logger

from pyd.core.errors import InvalidParameter, NotFound, PydError
from pyd.core.records import Image, RegistryAuth
from pyd.core.seams import Blocking
from pyd.engine.builder import copier, frontend, fs, lexer, mounts
from pyd.engine.builder.ignore import PatternMatcher
from pyd.engine.builder.parser import (
    Dockerfile,
    DockerfileError,
    Instruction,
    Stage,
    parse,
    parse_duration,
)
from pyd.engine.builder.runstep import CacheLocks, StepMounts, StepRefused, step_overrides

log = Logger()

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_ARGS = (
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
)  # fmt: skip
_SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "POLL": 29, "PWR": 30, "SYS": 31,
}  # fmt: skip


class BuildFailed(PydError):
    """A build step failed after the stream started; C{code} is a RUN's exit status."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


# --- seams -----------------------------------------------------------------------------------


class BuildImageStore(Protocol):
    """What the builder needs from the image store (adapted from the images area)."""

    async def resolve(self, ref: str) -> Image:
        """The local image C{ref} names. @raise NotFound: not present."""
        ...

    async def find_child(self, parent_id: str | None, cache_key: str) -> Image | None:
        """An image built from C{parent_id} with C{cache_key} (the build cache)."""
        ...

    async def create_rw_layer(self, layer_id: str, image_id: str | None) -> None:
        """A writable layer on top of the image (None: empty)."""
        ...

    async def mount_rw_layer(self, layer_id: str) -> str:
        """Mount it; return the root directory."""
        ...

    async def remove_rw_layer(self, layer_id: str) -> None:
        """Unmount and delete it (idempotent)."""
        ...

    async def commit(
        self,
        layer_id: str,
        config: dict[str, Any],
        created_by: str,
        author: str,
        parent_id: str | None,
        cache_key: str | None,
        top: dict[str, Any] | None = None,
    ) -> Image:
        """Store the layer's changes as a new image on top of the layer's image: C{config} is the
        new image's C{config} section, C{created_by}/C{author} its history entry, C{top} more
        top-level keys (C{container}, C{container_config}, C{docker_version}). An empty diff
        adds no layer (the history entry is marked C{empty_layer}), as dockerd does."""
        ...

    async def commit_config(
        self,
        parent_id: str | None,
        config: dict[str, Any],
        created_by: str,
        author: str,
        cache_key: str | None,
        top: dict[str, Any] | None = None,
    ) -> Image:
        """A new image with C{parent_id}'s layers and C{config} (an C{empty_layer} history
        entry), without a writable layer: what a metadata-only step commits."""
        ...

    async def tag(self, image_id: str, ref: str) -> str:
        """Point C{ref} at the image; return the normalised familiar name (C{x:latest})."""
        ...


class BuildContainers(Protocol):
    """What the builder needs from the container service to run a RUN step."""

    async def create(
        self, image_id: str, config: dict[str, Any], host_config: dict[str, Any]
    ) -> str:
        """Create a container (its writable layer is C{layer_id} = the container id)."""
        ...

    async def run(
        self,
        container_id: str,
        output: Callable[[bytes], None],
        cancelled: Callable[[], bool],
    ) -> int | None:
        """Start it, pass its stdout+stderr to C{output} as it comes, return the exit code;
        once C{cancelled()} is true, stop following and return None (the caller removes it)."""
        ...

    async def remove(self, container_id: str) -> None:
        """Force-remove it with its writable layer."""
        ...

    def resolve_id(self, ref: str) -> str:
        """The full id of the container C{ref} names (name, id or id prefix).

        @raise NotFound: no such container.
        """
        ...


class ImagePuller(Protocol):
    """Pulls a missing base image (the registry area), reporting progress lines."""

    async def pull(
        self, ref: str, progress: BuildProgress, auths: dict[str, RegistryAuth]
    ) -> Image:
        """Pull C{ref} with the credentials in C{auths} (by registry) that match it.

        @raise PydError: the pull failed (message shown to the user)."""
        ...


class BuildProgress(Protocol):
    """Where the build reports what dockerd would print."""

    def stream(self, text: str) -> None:
        """Text for the client's terminal (C{{"stream": ...}})."""
        ...

    def aux(self, image_id: str) -> None:
        """The image id a stage produced (C{{"aux": {"ID": ...}}})."""
        ...

    def pull_status(self, status: Any) -> None:
        """A pull progress record of the registry area (rendered by the API layer)."""
        ...

    @property
    def cancelled(self) -> bool:
        """Whether the client went away."""
        ...


# --- requests --------------------------------------------------------------------------------


@attrs.frozen
class BuildOptions:
    """The legacy C{POST /build} parameters, decoded."""

    tags: tuple[str, ...] = ()
    dockerfile: str = "Dockerfile"
    target: str = ""
    build_args: dict[str, str | None] = attrs.field(factory=dict)
    labels: dict[str, str] = attrs.field(factory=dict)
    no_cache: bool = False
    pull: bool = False
    rm: bool = True
    force_rm: bool = False
    quiet: bool = False
    cache_from: tuple[str, ...] = ()
    network_mode: str = ""
    extra_hosts: tuple[str, ...] = ()
    memory: int = 0
    memory_swap: int = 0
    shm_size: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    cgroup_parent: str = ""
    ulimits: tuple[dict[str, Any], ...] = ()
    platform: str = ""
    squash: bool = False
    registry_auth: dict[str, RegistryAuth] = attrs.field(factory=dict)  # X-Registry-Config
    # RUN options the caller's role may not use (entitlement -> refusal), set by the API's
    # authorization: "network.host" (RUN --network=host), "security.insecure".
    refused: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class PreparedBuild:
    """A build whose context is unpacked and whose Dockerfile parsed, ready to run."""

    build_id: str
    workdir: str  # scratch dir of this build (context/ under it)
    context: str
    dockerfile: Dockerfile
    options: BuildOptions


@attrs.frozen
class BuildResult:
    """What a successful build made."""

    image_id: str
    tags: tuple[str, ...]


# --- helpers ------------------------------------------------------------------------------------


def short_id(image_id: str) -> str:
    """The 12-hex form dockerd prints."""
    return image_id.split(":", 1)[-1][:12]


def _goarch() -> str:
    m = _platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


def _env_map(env: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in env:
        k, _, v = e.partition("=")
        out[k] = v
    return out


# container.Config's fields that Go always writes (the others are omitempty).
_CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
    "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
    "OnBuild": None, "Labels": None,
}  # fmt: skip
_CONFIG_OMITEMPTY = (
    "ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress",
    "StopSignal", "StopTimeout", "Shell",
)  # fmt: skip
_HEALTH_KEYS = ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")


def _full_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run config in the shape dockerd stores it (Go's C{container.Config} JSON)."""
    out = copy.deepcopy(_CONFIG_DEFAULTS)
    for k, v in config.items():
        if k in _CONFIG_DEFAULTS or (k in _CONFIG_OMITEMPTY and v):
            out[k] = copy.deepcopy(v)
    hc = out.get("Healthcheck")
    if hc:
        out["Healthcheck"] = {k: copy.deepcopy(hc[k]) for k in _HEALTH_KEYS if hc.get(k)}
    return out


def _go_quote_list(items: Sequence[str]) -> str:
    """Go's C{%q} of a C{[]string}: C{["a" "b"]}."""
    return "[" + " ".join(json.dumps(i) for i in items) + "]"


def _parse_duration(value: str, flag: str) -> int:
    """A Go duration in nanoseconds (the parser has already checked it)."""
    try:
        return parse_duration(value)
    except ValueError as e:
        raise InvalidParameter(str(e)) from None


def _parse_port_specs(specs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for spec in specs:
        proto = "tcp"
        body = spec
        if "/" in spec:
            body, proto = spec.rsplit("/", 1)
            proto = proto.lower()
            if proto not in ("tcp", "udp", "sctp"):
                raise InvalidParameter(f"invalid proto: {proto}")
        port = body.rsplit(":", 1)[-1]
        lo, _, hi = port.partition("-")
        try:
            start = int(lo)
            end = int(hi) if hi else start
        except ValueError:
            raise InvalidParameter(f"invalid containerPort: {port}") from None
        if not (0 < start <= end <= 65535):
            raise InvalidParameter(f"invalid containerPort: {port}")
        out.extend(f"{p}/{proto}" for p in range(start, end + 1))
    return out


class BuildArgs:
    """The classic builder's ARG bookkeeping for one stage."""

    def __init__(self, given: dict[str, str | None], meta: dict[str, str | None]) -> None:
        self.given = given
        self.meta = meta  # global ARG values (after build-arg override)
        self.declared: dict[str, str | None] = {}
        self.referenced: set[str] = set()

    def declare(self, key: str, default: str | None) -> None:
        """ARG in a stage: the build-arg wins, then the default, then the global value."""
        self.referenced.add(key)
        if key in self.given and self.given[key] is not None:
            self.declared[key] = self.given[key]
        elif default is not None:
            self.declared[key] = default
        elif key in self.meta:
            self.declared[key] = self.meta[key]
        else:
            self.declared[key] = None

    def run_env(self, env: Sequence[str]) -> list[str]:
        """ARG values a RUN sees (those not shadowed by ENV), plus given proxy args."""
        have = set(_env_map(env))
        out = []
        for k, v in self.declared.items():
            if v is not None and k not in have:
                out.append(f"{k}={v}")
        for k in PROXY_ARGS:
            if k not in self.declared and k not in have and self.given.get(k) is not None:
                out.append(f"{k}={self.given[k]}")
        return out


# --- the service -----------------------------------------------------------------------------


class BuildService:
    """Runs classic builds. One instance per daemon; builds may run concurrently."""

    def __init__(
        self,
        images: BuildImageStore,
        containers: BuildContainers | None,
        io: Blocking,
        root: str,
        clock: Any,
        puller: ImagePuller | None = None,
        docker_version: str = "",
        cache_root: str = "",
        allow_insecure: bool = False,
        allow_host_network: bool = True,
    ) -> None:
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

    # .. preparation (errors here are plain HTTP errors) ..........................................

    async def prepare(self, body: Any, options: BuildOptions) -> PreparedBuild:
        """Unpack the context, read and parse the Dockerfile, check the options.

        @raise InvalidParameter: bad options, a bad context or a bad Dockerfile.
        """
        if options.squash:
            raise InvalidParameter("squash is only supported with experimental mode")
        if options.platform and options.platform not in ("linux", f"linux/{_goarch()}"):
            raise InvalidParameter(
                f'"{options.platform}": unsupported platform (this daemon builds '
                f"linux/{_goarch()} only)"
            )
        build_id = secrets.token_hex(16)
        workdir = os.path.join(self.root, build_id)
        context = os.path.join(workdir, "context")
        try:
            await self.io.run(os.makedirs, context, 0o700)
            await self.io.run(fs.extract_context, body, context)
            raw = await self.io.run(fs.read_dockerfile, context, options.dockerfile)
            await self.io.run(fs.apply_dockerignore, context, (fs.clean_rel(options.dockerfile),))
            if not raw:
                raise InvalidParameter(f"the Dockerfile ({options.dockerfile}) cannot be empty")
            try:
                df = parse(raw)
            except DockerfileError as e:
                raise e.for_file(options.dockerfile) from None
            if not df.stages:
                raise InvalidParameter(f"the Dockerfile ({options.dockerfile}) cannot be empty")
            if options.target and not any(s.name == options.target.lower() for s in df.stages):
                # dockerd 20.10: "failed to reach build target x in Dockerfile"
                raise InvalidParameter(f'target stage "{options.target}" could not be found')
            # A Dockerfile sent from outside the context (.dockerfile.<hex>) is not part of it.
            if os.path.basename(options.dockerfile).startswith(".dockerfile."):
                await self.io.run(fs.remove_dockerfile, context, options.dockerfile)
        except BaseException:
            await self.io.run(fs.remove_tree, workdir)
            raise
        return PreparedBuild(build_id, workdir, context, df, options)

    async def discard(self, prepared: PreparedBuild) -> None:
        """Remove a prepared build's scratch directory."""
        await self.io.run(fs.remove_tree, prepared.workdir)

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
            return await _Build(self, prepared, progress).run()
        finally:
            # Removing a large context takes a while: do not hold the response for it.
            d = self.io.run(fs.remove_tree, prepared.workdir)
            d.addErrback(lambda f: log.failure("removing {path}", f, path=prepared.workdir))

    async def prune(self) -> tuple[list[str], int]:
        """Remove leftover scratch directories of builds and the cache mounts no running step
        uses; return (ids, bytes reclaimed)."""
        ids, size = await self.io.run(_prune_dirs, self.root)
        cids, csize = await self.io.run(self.cache.prune)
        return ids + cids, size + csize

    def info_counts(self) -> Any:
        """The system area's contributor protocol: builds count nothing in C{/info}."""
        from twisted.internet.defer import succeed

        return succeed({})

    def disk_usage(self) -> Any:
        """C{/system/df}'s C{BuildCache}: the cache mounts kept between builds."""
        d = self.io.run(self.cache.usage)
        d.addCallback(lambda records: {"build_cache": records})
        return d


def _prune_dirs(root: str) -> tuple[list[str], int]:
    removed: list[str] = []
    total = 0
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return [], 0
    for name in names:
        path = os.path.join(root, name)
        for dirpath, _d, files in os.walk(path):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        fs.remove_tree(path)
        removed.append(name)
    return removed, total


@attrs.define
class _StageState:
    """The classic builder's dispatch state for one stage."""

    image: Image | None  # None: scratch with nothing committed yet
    image_id: str  # "" for scratch
    config: dict[str, Any]  # the run config (Docker's container Config shape)
    base_config: dict[str, Any]  # the full image config of the current image
    args: BuildArgs
    name: str
    cmd_set: bool = False
    maintainer: str = ""


class _Build:
    """One run of a prepared build."""

    def __init__(self, svc: BuildService, prepared: PreparedBuild, progress: BuildProgress) -> None:
        self.svc = svc
        self.p = prepared
        self.opts = prepared.options
        self.out = progress
        self.df = prepared.dockerfile
        self.esc = prepared.dockerfile.escape
        self.stage_results: list[_StageState] = []
        self.stage_names: dict[str, int] = {}
        self.tmp_containers: list[str] = []
        self.used_args: set[str] = set()
        self.quiet_output: list[str] = []  # with -q: what the build printed

    def say(self, text: str) -> None:
        if self.opts.quiet:
            self.quiet_output.append(text)  # shown only if the build fails, as dockerd does
        else:
            self.out.stream(text)

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
            name = await self.svc.images.tag(state.image_id, t)
            tagged.append(name)
            self.say(f"Successfully tagged {name}\n")
        if self.opts.quiet:
            self.out.stream(state.image_id + "\n")
        return BuildResult(state.image_id, tuple(tagged))

    def _check_cancel(self) -> None:
        if self.out.cancelled:
            raise BuildFailed("Build cancelled")

    async def _dispatch_with_cleanup(self, state: _StageState, inst: Instruction) -> None:
        ok = False
        try:
            await self._dispatch(state, inst)
            ok = True
        finally:
            if self.opts.force_rm or (self.opts.rm and ok):
                await self._remove_containers()

    async def _remove_containers(self) -> None:
        while self.tmp_containers:
            cid = self.tmp_containers.pop()
            if not cid.startswith("nop:"):
                assert self.svc.containers is not None
                try:
                    await self.svc.containers.remove(cid)
                except NotFound:
                    pass
                except PydError as e:
                    self.say(f"Removing intermediate container {cid[:12]}: {e}\n")
                    continue
            self.say(f" ---> Removed intermediate container {cid.removeprefix('nop:')[:12]}\n")

    # .. expansion ....................................................................................

    def _expand(self, word: str, env: dict[str, str]) -> str:
        try:
            return lexer.process_word(word, env, self.esc)
        except lexer.LexError as e:
            raise BuildFailed(str(e)) from None

    def _stage_env(self, state: _StageState) -> dict[str, str]:
        env = _env_map(state.config.get("Env") or [])
        for k, v in state.args.declared.items():
            if v is not None and k not in env:
                env[k] = v
        return env

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

    async def _get_image(self, name: str) -> Image:
        if self.opts.pull and self.svc.puller is not None:
            return await self.svc.puller.pull(name, self.out, self.opts.registry_auth)
        try:
            return await self.svc.images.resolve(name)
        except NotFound:
            if self.svc.puller is None:
                repo = name.split("@")[0]
                if ":" in repo.rsplit("/", 1)[-1]:
                    repo = repo.rsplit(":", 1)[0]
                raise BuildFailed(
                    f"pull access denied for {repo}, repository does not exist "
                    "or may require 'docker login': no registry is configured for this daemon"
                ) from None
            return await self.svc.puller.pull(name, self.out, self.opts.registry_auth)

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

    def _shell(self, cfg: dict[str, Any]) -> list[str]:
        return list(cfg.get("Shell") or ["/bin/sh", "-c"])

    def _cmdline(self, cfg: dict[str, Any], inst: Instruction) -> list[str]:
        if inst.json_form:
            return list(inst.args)
        if not inst.args:
            return []
        return [*self._shell(cfg), inst.args[0]]

    def _healthcheck(self, inst: Instruction) -> dict[str, Any]:
        if inst.args[0] == "NONE":
            return {"Test": ["NONE"]}
        hc: dict[str, Any] = {"Test": list(inst.args)}
        for flag, key in (
            ("interval", "Interval"),
            ("timeout", "Timeout"),
            ("start-period", "StartPeriod"),
            ("start-interval", "StartInterval"),
        ):
            if inst.has_flag(flag):
                try:
                    d = _parse_duration(inst.flag(flag), flag)
                except InvalidParameter as e:
                    raise BuildFailed(str(e)) from None
                if d and d < 10**6:
                    raise BuildFailed(f'Interval "{flag}" cannot be less than 1ms')
                hc[key] = d
        if inst.has_flag("retries"):
            try:
                r = int(inst.flag("retries"))
            except ValueError:
                raise BuildFailed(
                    f'strconv.ParseInt: parsing "{inst.flag("retries")}": invalid syntax'
                ) from None
            if r < 0:
                raise BuildFailed("--retries cannot be negative")
            hc["Retries"] = r
        return hc

    # .. cache + commit .........................................................................................

    def _cache_key(
        self, st: _StageState, cmd: list[str], config: dict[str, Any] | None = None, extra: str = ""
    ) -> str:
        cfg = copy.deepcopy(config if config is not None else st.config)
        cfg["Cmd"] = cmd
        blob = json.dumps(
            {"parent": st.image_id, "config": cfg, "extra": extra},
            sort_keys=True,
            separators=(",", ":"),
        )
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()

    async def _probe(self, st: _StageState, key: str) -> bool:
        if self.opts.no_cache:
            return False
        hit = await self.svc.images.find_child(st.image_id or None, key)
        if hit is None:
            return False
        if self.opts.cache_from and not await self._in_cache_from(hit):
            return False
        self.say(" ---> Using cache\n")
        self._advance(st, hit)
        return True

    async def _in_cache_from(self, img: Image) -> bool:
        for ref in self.opts.cache_from:
            try:
                cur: Image | None = await self.svc.images.resolve(ref)
            except NotFound:
                continue
            seen = 0
            while cur is not None and seen < 500:
                if cur.id == img.id:
                    return True
                seen += 1
                if not cur.parent_id:
                    break
                try:
                    cur = await self.svc.images.resolve(cur.parent_id)
                except NotFound:
                    break
        return False

    def _advance(self, st: _StageState, img: Image) -> None:
        st.image = img
        st.image_id = img.id
        st.base_config = copy.deepcopy(img.config)

    async def _commit_layer(
        self,
        st: _StageState,
        layer: str,
        cmd: list[str],
        key: str | None,
        container: str = "",
        probe_config: dict[str, Any] | None = None,
    ) -> None:
        """Commit C{layer} as the next image, with the image config dockerd writes: C{config}
        is the run config, C{container_config} the config the step was probed with (its C{Cmd}
        the step's command; for a step that created a container, C{container}, also as what
        dockerd's container create filled in: the short id as C{Hostname}, C{Labels} {})."""
        cfg = _full_config(st.config)
        cfg["Image"] = st.image_id
        cc = _full_config(probe_config if probe_config is not None else st.config)
        cc["Cmd"] = list(cmd)
        cc["Image"] = st.image_id
        top: dict[str, Any] = {"container_config": cc}
        if container:
            top["container"] = container
            if probe_config is None:
                cc["Hostname"] = container[:12]
                cc["Labels"] = dict(cc.get("Labels") or {})
        if self.svc.docker_version:
            top["docker_version"] = self.svc.docker_version
        if layer:
            img = await self.svc.images.commit(
                layer, cfg, " ".join(cmd), st.maintainer, st.image_id or None, key, top
            )
        else:  # a metadata-only step: no layer to diff
            img = await self.svc.images.commit_config(
                st.image_id or None, cfg, " ".join(cmd), st.maintainer, key, top
            )
        self._advance(st, img)

    def _merge_parent_healthcheck(self, st: _StageState) -> None:
        """dockerd's container create fills a healthcheck's unset fields from the image's and,
        through a shared pointer, the build's own config: after C{HEALTHCHECK NONE} the image
        keeps the previous interval, timeout and retries."""
        hc = st.config.get("Healthcheck")
        parent = (st.base_config.get("config") or {}).get("Healthcheck")
        if not hc or not parent:
            return
        for k in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            if not hc.get(k) and parent.get(k):
                hc[k] = copy.deepcopy(parent[k])

    async def _step_container(self, st: _StageState, cmd: list[str]) -> str | None:
        """The container of a metadata-only step, or None.

        dockerd creates a container (never started) for each such step and commits it. pyd
        normally creates none: the step's image is the parent's layers with the new config
        (the printed C{Running in} id is only the image's C{container} field). With
        C{--rm=false} it creates the container, so that C{docker ps -a} afterwards shows what
        dockerd's shows."""
        self._merge_parent_healthcheck(st)
        if (
            not self.opts.rm
            and not self.opts.force_rm
            and self.svc.containers is not None
            and st.image_id
        ):
            cfg = copy.deepcopy(st.config)
            cfg.update({"Cmd": list(cmd), "Image": st.image_id})
            cid = await self.svc.containers.create(st.image_id, cfg, step_host_config(self.opts))
            self.tmp_containers.append(cid)
            self.say(f" ---> Running in {cid[:12]}\n")
            return cid
        return None

    async def _commit_meta(self, st: _StageState, comment: str) -> None:
        cmd = [*self._shell(st.config), "#(nop) ", comment]
        key = self._cache_key(st, cmd)
        if await self._probe(st, key):
            return
        cid = await self._step_container(st, cmd)
        if cid is not None:
            await self._commit_layer(st, cid, cmd, key, container=cid)
            return
        fake = secrets.token_hex(32)
        self.say(f" ---> Running in {fake[:12]}\n")
        self.tmp_containers.append("nop:" + fake)
        await self._commit_layer(st, "", cmd, key, container=fake)

    async def _workdir(self, st: _StageState, wd: str) -> None:
        comment = f"WORKDIR {wd}"
        cmd = [*self._shell(st.config), "#(nop) " + comment]
        key = self._cache_key(st, cmd)
        if await self._probe(st, key):
            return
        cid = await self._step_container(st, cmd)
        layer = cid or secrets.token_hex(32)
        if cid is None:
            self.say(f" ---> Running in {layer[:12]}\n")
            self.tmp_containers.append("nop:" + layer)
            await self.svc.images.create_rw_layer(layer, st.image_id or None)
        try:
            root = await self.svc.images.mount_rw_layer(layer)
            user = st.config.get("User") or ""
            owner = await self.svc.io.run(_owner_for, root, user) if user else (0, 0)
            await self.svc.io.run(copier.make_workdir, root, wd, owner)
            await self._commit_layer(st, layer, cmd, key, container=layer)
        finally:
            if cid is None:
                await self.svc.images.remove_rw_layer(layer)

    # .. RUN ....................................................................................

    async def _run(self, st: _StageState, inst: Instruction) -> None:
        cfg = st.config
        env = self._stage_env(st)
        ropts = self._run_options(st, inst, env)
        script_doc = None  # a single heredoc starting with #!: run as a file (BuildKit)
        if inst.json_form:
            cmd = list(inst.args)
        else:
            script = inst.args[0] if inst.args else ""
            if inst.heredocs:
                first = inst.heredocs[0]
                if len(inst.heredocs) == 1 and _only_heredoc(script, first.name):
                    script = first.content
                    if script.startswith("#!"):
                        script_doc = first
                else:
                    # The shell handles the heredocs: the command line, then each body and
                    # its delimiter, as BuildKit hands it over.
                    script = script + "".join("\n" + h.content + h.name for h in inst.heredocs)
            # An empty RUN runs the bare shell (which fails), as dockerd does.
            cmd = [*self._shell(cfg), script] if inst.args or inst.heredocs else self._shell(cfg)
        build_env = st.args.run_env(cfg.get("Env") or [])
        save_cmd = cmd
        if build_env:
            referenced = sorted(
                e
                for e in build_env
                if e.partition("=")[0] in st.args.declared or e.partition("=")[0] not in PROXY_ARGS
            )
            save_cmd = [f"|{len(referenced)}", *referenced, *cmd]
        probe_cfg = copy.deepcopy(cfg)
        probe_cfg["Entrypoint"] = None
        key = self._cache_key(st, save_cmd, probe_cfg, extra=ropts.key())
        if await self._probe(st, key):
            return
        if self.svc.containers is None:
            raise BuildFailed("RUN is not available: this daemon has no container runtime")
        step = StepMounts(
            self.svc.io,
            self.svc.cache,
            self.svc.cache_locks,
            self.p.context,
            self.p.workdir,
            lambda ref: self._from_root(ref, st),
            self.svc.images.remove_rw_layer,
        )
        try:
            await self._run_container(st, cmd, save_cmd, build_env, key, probe_cfg, ropts, step,
                                      script_doc)  # fmt: skip
        finally:
            await step.close()

    def _run_options(
        self, st: _StageState, inst: Instruction, env: dict[str, str]
    ) -> frontend.RunOptions:
        """The RUN's BuildKit flags, checked against what this build may use."""
        try:
            ropts = frontend.parse_run_options(
                list(inst.flags),
                lambda v: self._expand(v, env),
                st.config.get("WorkingDir") or "/",
            )
        except frontend.FrontendError as e:
            raise BuildFailed(f"RUN: {e}") from None
        if ropts.network == "host":
            if not self.svc.allow_host_network:
                raise BuildFailed(
                    "RUN --network=host is not allowed: this daemon does not grant the "
                    "network.host entitlement"
                )
            if "network.host" in self.opts.refused:
                raise BuildFailed(self.opts.refused["network.host"])
        if ropts.security == "insecure":
            if not self.svc.allow_insecure:
                raise BuildFailed(
                    "RUN --security=insecure is not allowed: this daemon does not grant the "
                    "security.insecure entitlement"
                )
            if "security.insecure" in self.opts.refused:
                raise BuildFailed(self.opts.refused["security.insecure"])
        return ropts

    async def _run_container(
        self,
        st: _StageState,
        cmd: list[str],
        save_cmd: list[str],
        build_env: list[str],
        key: str,
        probe_cfg: dict[str, Any],
        ropts: frontend.RunOptions,
        step: StepMounts,
        script_doc: Any,
    ) -> None:
        assert self.svc.containers is not None
        cfg = st.config
        try:
            await step.prepare(ropts)
            if script_doc is not None:
                cmd = [*self._shell(cfg), await step.script(script_doc.name, script_doc.content)]
        except StepRefused as e:
            raise BuildFailed(str(e)) from None
        except mounts.MountError as e:
            raise BuildFailed(f"RUN --mount: {e}") from None
        run_cfg = copy.deepcopy(cfg)
        run_cfg.update(
            {
                "Cmd": cmd,
                "Env": [*(cfg.get("Env") or []), *build_env],
                # [""]: the image's ENTRYPOINT does not wrap the RUN command.
                "Entrypoint": [""],
                "Healthcheck": {"Test": ["NONE"]},
                "Image": st.image_id,
                "AttachStdout": True,
                "AttachStderr": True,
                "Tty": False,
                "OpenStdin": False,
            }
        )
        host_config = step_host_config(self.opts)
        host_config.update(step_overrides(ropts, host_config["NetworkMode"]))
        if step.host_mounts:
            host_config["Mounts"] = list(step.host_mounts)
        cid = await self.svc.containers.create(st.image_id, run_cfg, host_config)
        self.tmp_containers.append(cid)
        self.say(f" ---> Running in {cid[:12]}\n")
        if step.targets:
            await step.find_stubs(await self.svc.images.mount_rw_layer(cid))

        def output(data: bytes) -> None:
            self.say(data.decode("utf-8", "replace"))

        code = await self.svc.containers.run(cid, output, lambda: self.out.cancelled)
        if code is None or self.out.cancelled:
            # The client went away: like dockerd, remove the step's container and stop.
            self.tmp_containers.remove(cid)
            try:
                await self.svc.containers.remove(cid)
            except PydError as e:
                log.warn("removing cancelled build container {cid}: {err}", cid=cid, err=e)
            raise BuildFailed("Build cancelled")
        if code != 0:
            raise BuildFailed(
                f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code=code
            )
        if step.stubs:
            await step.clean(await self.svc.images.mount_rw_layer(cid))
        await self._commit_layer(st, cid, save_cmd, key, container=cid, probe_config=probe_cfg)

    # .. COPY / ADD ..............................................................................

    async def _copy(self, st: _StageState, inst: Instruction, env: dict[str, str]) -> None:
        name = inst.cmd.upper()
        words = [self._expand(w, env) if not _is_heredoc_word(w, inst) else w for w in inst.args]
        dest = words[-1]
        srcs = words[:-1]
        bk = self._copy_flags(inst, env, srcs)
        chown = self._expand(inst.flag("chown"), env) if inst.has_flag("chown") else ""
        chmod = self._expand(inst.flag("chmod"), env) if inst.has_flag("chmod") else ""
        mode = None
        if chmod:
            try:
                mode = fs.parse_chmod(chmod)
            except fs.BuildFileError as e:
                raise BuildFailed(str(e)) from None
        from_ref = inst.flag("from") if inst.cmd == "copy" else ""
        if "$" in from_ref:
            raise BuildFailed(
                "variable expansion is not supported for --from, define a new stage with FROM "
                "using ARG from global scope as a workaround"
            )
        scratch = os.path.join(self.p.workdir, "src-" + secrets.token_hex(6))
        from_layer = ""
        try:
            await self.svc.io.run(os.makedirs, scratch, 0o700)
            source_root = self.p.context
            if from_ref:
                source_root, from_layer = await self._from_root(from_ref, st)
            sources: list[fs.Source] = []
            multi = False
            for s in srcs:
                doc = next(
                    (
                        h
                        for h in inst.heredocs
                        if _is_heredoc_word(s, inst) and h.name == _heredoc_name(s)
                    ),
                    None,
                )
                if doc is not None:
                    content = doc.content
                    if doc.expand:
                        content = self._expand_heredoc(content, env)
                    sources.append(
                        await self.svc.io.run(fs.write_file, scratch, doc.name, content.encode())
                    )
                    continue
                if inst.cmd == "add" and frontend.git_url(s):
                    raise BuildFailed(
                        f"ADD {s}: git sources are not supported by this daemon (clone the "
                        "repository into the build context, or RUN git clone)"
                    )
                if inst.cmd == "add" and s.startswith(("http://", "https://")):
                    src = await self.svc.io.run(fs.download, s, scratch)
                    if bk.checksum:
                        await self._verify_checksum(src, s, bk.checksum)
                    sources.append(src)
                    continue
                if inst.cmd == "copy" and s.startswith(("http://", "https://")):
                    raise BuildFailed("source can't be a URL for COPY")
                if any(ch in s for ch in "*?["):
                    multi = True
                try:
                    found = await self.svc.io.run(
                        fs.resolve_sources, source_root, [s], name, bk.parents
                    )
                except fs.BuildFileError as e:
                    raise BuildFailed(str(e)) from None
                if bk.exclude:
                    found = [f for f in found if not bk.exclude.matches(f.name)]
                sources.extend(found)
            if not sources:
                raise BuildFailed(f"{name} failed: no source files were specified")
            src_hash = await self.svc.io.run(fs.hash_sources, sources)
            # dockerd's history text names --chown but not --chmod (the key covers both).
            chown_comment = f"--chown={chown} " if chown else ""
            comment = f"{name} {chown_comment}{src_hash} in {dest} "
            cmd = [*self._shell(st.config), "#(nop) " + comment]
            extra = f"chmod={chmod}" if chmod else ""
            if bk.key():
                extra += ("," if extra else "") + bk.key()
            key = self._cache_key(st, cmd, extra=extra)
            if await self._probe(st, key):
                return
            layer = secrets.token_hex(32)
            await self.svc.images.create_rw_layer(layer, st.image_id or None)
            try:
                root = await self.svc.images.mount_rw_layer(layer)
                owner: tuple[int, int] | None = (0, 0)
                if chown:
                    try:
                        owner = await self.svc.io.run(fs.parse_chown, chown, root)
                    except fs.BuildFileError as e:
                        raise BuildFailed(str(e)) from None
                elif from_ref:
                    owner = None
                opts = copier.CopyOptions(
                    owner=owner,
                    mode=mode,
                    unpack=inst.cmd == "add" and bk.unpack,
                    chowned=bool(chown),
                    exclude=bk.exclude,
                )
                try:
                    await self.svc.io.run(
                        copier.copy_into,
                        root,
                        sources,
                        dest,
                        st.config.get("WorkingDir") or "/",
                        opts,
                        name,
                        multi,
                    )
                except fs.BuildFileError as e:
                    raise BuildFailed(str(e)) from None
                await self._commit_layer(st, layer, cmd, key)
            finally:
                await self.svc.images.remove_rw_layer(layer)
        finally:
            if from_layer:
                await self.svc.images.remove_rw_layer(from_layer)
            await self.svc.io.run(fs.remove_tree, scratch)

    def _copy_flags(self, inst: Instruction, env: dict[str, str], srcs: list[str]) -> _CopyFlags:
        """COPY/ADD's BuildKit flags: --link, --parents, --exclude, ADD --checksum/--unpack."""
        try:
            link = _flag_bool(inst, "link")
            parents = _flag_bool(inst, "parents")
            unpack = _flag_bool(inst, "unpack", True)
        except ValueError as e:
            raise BuildFailed(f"{inst.cmd.upper()}: {e}") from None
        if inst.has_flag("keep-git-dir"):
            raise BuildFailed("ADD --keep-git-dir: git sources are not supported by this daemon")
        patterns = [self._expand(p, env) for p in inst.flag_all("exclude")]
        checksum = self._expand(inst.flag("checksum"), env) if inst.has_flag("checksum") else ""
        if checksum:
            if len(srcs) != 1:
                raise BuildFailed("checksum can't be specified for multiple sources")
            if not srcs[0].startswith(("http://", "https://")) or frontend.git_url(srcs[0]):
                raise BuildFailed("checksum requires HTTP(S) sources")
            algo, _, hexd = checksum.partition(":")
            if (
                algo != "sha256"
                or len(hexd) != 64
                or any(c not in "0123456789abcdef" for c in hexd)
            ):
                raise BuildFailed(f"invalid checksum digest format: {checksum!r} (sha256:<hex>)")
        return _CopyFlags(
            link=link,
            parents=parents,
            exclude=PatternMatcher(patterns) if patterns else None,
            patterns=tuple(patterns),
            checksum=checksum,
            unpack=unpack,
        )

    async def _verify_checksum(self, src: fs.Source, url: str, want: str) -> None:
        got = await self.svc.io.run(fs.file_digest, src)
        if got != want:
            raise BuildFailed(f"ADD {url}: digest mismatch {got}: expected {want}")

    def _expand_heredoc(self, content: str, env: dict[str, str]) -> str:
        # Unquoted delimiter: variables expand; quotes are not special.
        out = []
        for line in content.split("\n"):
            escaped = line.replace("'", "\x01").replace('"', "\x02")
            try:
                v = lexer.process_word(escaped, env, self.esc)
            except lexer.LexError as e:
                raise BuildFailed(str(e)) from None
            out.append(v.replace("\x01", "'").replace("\x02", '"'))
        return "\n".join(out)

    async def _from_root(self, ref: str, st: _StageState) -> tuple[str, str]:
        """A readable root filesystem for C{COPY --from}: a stage (name or index) or an image."""
        image: Image | None
        idx = self.stage_names.get(ref.lower())
        if idx is None and ref.isdigit():
            i = int(ref)
            if i == len(self.stage_results):
                raise BuildFailed(f"invalid from flag value {ref}: refers to current build stage")
            if i > len(self.stage_results):
                raise BuildFailed(f"invalid from flag value {ref}: index out of bounds")
            idx = i
        if idx is not None:
            image = self.stage_results[idx].image
        else:
            try:
                image = await self._get_image(ref)
            except NotFound as e:
                raise BuildFailed(f"invalid from flag value {ref}: {e}") from None
        layer = secrets.token_hex(32)
        await self.svc.images.create_rw_layer(layer, image.id if image else None)
        root = await self.svc.images.mount_rw_layer(layer)
        return root, layer


@attrs.frozen
class _CopyFlags:
    link: bool
    parents: bool
    exclude: PatternMatcher | None
    patterns: tuple[str, ...]
    checksum: str
    unpack: bool

    def key(self) -> str:
        """Their part of the cache key ("" when none was given)."""
        parts = []
        if self.link:
            parts.append("link")
        if self.parents:
            parts.append("parents")
        if self.patterns:
            parts.append("exclude=" + json.dumps(list(self.patterns)))
        if self.checksum:
            parts.append("checksum=" + self.checksum)
        if not self.unpack:
            parts.append("unpack=false")
        return ",".join(parts)


def _flag_bool(inst: Instruction, name: str, default: bool = False) -> bool:
    if not inst.has_flag(name):
        return default
    v = inst.flag(name).lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    raise ValueError(f"invalid value for --{name}: {inst.flag(name)}")


def _only_heredoc(script: str, name: str) -> bool:
    """Whether a RUN's command line is just one heredoc marker (BuildKit runs its body)."""
    return script.strip() in (f"<<{name}", f"<<-{name}", f'<<"{name}"', f"<<'{name}'",
                              f'<<-"{name}"', f"<<-'{name}'")  # fmt: skip


def _is_heredoc_word(word: str, inst: Instruction) -> bool:
    return bool(inst.heredocs) and word.lstrip("0123456789").startswith("<<")


def _heredoc_name(word: str) -> str:
    w = word.lstrip("0123456789")[2:].lstrip("-")
    return w.replace("'", "").replace('"', "")


def _env_pairs(meta: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in meta.items() if v is not None}


def _owner_for(root: str, user: str) -> tuple[int, int]:
    try:
        return fs.parse_chown(user, root)
    except fs.BuildFileError:
        return (0, 0)


def _check_signal(sig: str) -> None:
    s = sig.upper()
    if s.isdigit():
        if int(s) == 0:
            raise BuildFailed(f"invalid signal: {sig}")
        return
    s = s.removeprefix("SIG")
    if s.startswith("RTMIN") or s.startswith("RTMAX") or s in _SIGNALS:
        return
    raise BuildFailed(f"invalid signal: {sig}")


def _go_duration(ns: int) -> str:
    """Go's C{time.Duration.String()}: C{0s}, C{500ms}, C{1.5s}, C{1m0s}, C{1h0m0s}."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)

    def frac(value: int, scale: int) -> str:
        whole, rest = divmod(value, scale)
        digits = str(rest).rjust(len(str(scale)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 10**6:
        return f"{sign}{frac(ns, 1000)}µs"
    if ns < 10**9:
        return f"{sign}{frac(ns, 10**6)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + frac(rest, 10**9) + "s"


def _go_healthcheck(hc: dict[str, Any]) -> str:
    """Go's C{%+v} of a C{*container.HealthConfig}, as current dockerd writes the history
    (20.10 used C{%q}: C{&{["CMD-SHELL" "x"] "30s" ...}})."""
    return (
        "&{" + f"Test:[{' '.join(hc['Test'])}] "
        f"Interval:{_go_duration(hc.get('Interval', 0))} "
        f"Timeout:{_go_duration(hc.get('Timeout', 0))} "
        f"StartPeriod:{_go_duration(hc.get('StartPeriod', 0))} "
        f"StartInterval:{_go_duration(hc.get('StartInterval', 0))} "
        f"Retries:{hc.get('Retries', 0)}" + "}"
    )


def step_host_config(o: BuildOptions) -> dict[str, Any]:
    """The C{HostConfig} of every RUN step's container for build options C{o}.

    The API's authorization checks this same dict (L{pyd.api.authz}), so a build can never give
    its step containers more than the caller may give a container of their own.
    """
    mode = o.network_mode if o.network_mode not in ("", "default") else "bridge"
    return {
        "NetworkMode": mode,
        "ExtraHosts": list(o.extra_hosts) or None,
        "Memory": o.memory,
        "MemorySwap": o.memory_swap,
        "ShmSize": o.shm_size,
        "CpuShares": o.cpu_shares,
        "CpuPeriod": o.cpu_period,
        "CpuQuota": o.cpu_quota,
        "CpusetCpus": o.cpuset_cpus,
        "CpusetMems": o.cpuset_mems,
        "CgroupParent": o.cgroup_parent,
        "Ulimits": list(o.ulimits) or None,
    }
