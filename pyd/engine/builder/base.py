"""What the builder's parts share (layer: engine): the seams it runs against (image store,
containers, puller, progress), build options and results, build args, the image-config helpers,
and the state of one build (L{_BuildBase}: stages, variables, the step's shell and base image).
"""

from __future__ import annotations

import copy
import json
import os
import platform as _platform
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
from twisted.logger import Logger

from pyd.core.deferreds import shield
from pyd.core.errors import InvalidParameter, NotFound, PydError
from pyd.core.records import Image, RegistryAuth
from pyd.engine.builder import fs, intar, lexer
from pyd.engine.builder.parser import (
    Dockerfile,
    Instruction,
    parse_duration,
)

if TYPE_CHECKING:
    from pyd.engine.builder.builder import BuildService

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


def split_tag(ref: str) -> tuple[str, str | None]:
    """C{repo[:tag]} split at the tag's colon (not a registry port's)."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, None


class BuildFailed(PydError):
    """A build step failed after the stream started; C{code} is a RUN's exit status."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class BuildCancelled(BuildFailed):
    """The client went away during the build (counted as moby's build_canceled)."""

    def __init__(self) -> None:
        super().__init__("Build cancelled")


# --- seams -----------------------------------------------------------------------------------


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


def _prune_dirs(root: str, keep: frozenset[str] = frozenset()) -> tuple[list[str], int]:
    """Remove the scratch directories under C{root} but those of the builds in C{keep}."""
    removed: list[str] = []
    total = 0
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return [], 0
    for name in names:
        if name in keep:
            continue
        path = os.path.join(root, name)
        for dirpath, _d, files in os.walk(path):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:  # removed while walking: it takes no space
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


class _BuildBase:
    """The state of one build and the helpers every step uses."""

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

    def _check_cancel(self) -> None:
        if self.out.cancelled:
            raise BuildCancelled()

    def _space_check(self) -> Callable[[], None] | None:
        """The min-free-space check of the data root's filesystem (None: no reserve)."""
        keep_free, root = self.svc.keep_free, self.svc.root
        if not keep_free:
            return None
        return lambda: intar.check_free_space(root, keep_free)

    async def _check_free_space(self) -> None:
        """Before a step that writes a layer: stop below the free-space reserve."""
        check = self._space_check()
        if check is not None:
            try:
                await self.svc.io.run(check)
            except intar.LimitReached as e:
                raise BuildFailed(str(e)) from None

    async def _remove_containers(self) -> None:
        # Shielded: a cancel (the client went away) landing mid-removal must not leave the
        # rest of the step containers listed.
        await shield(self._remove_all_containers(), "removing a build's containers")

    async def _remove_all_containers(self) -> None:
        while self.tmp_containers:
            cid = self.tmp_containers.pop()
            if not cid.startswith("nop:"):
                assert self.svc.containers is not None
                try:
                    await self.svc.containers.remove(cid)
                except NotFound:  # the step container is already gone
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
    its step containers more than the caller may give a container of their own. A RUN's own
    flags add to it only what L{pyd.engine.builder.runstep.step_overrides} and the step's mounts
    give: C{NetworkMode} none/host and C{Privileged} (both refused unless the caller's role and
    the daemon allow them, L{BuildOptions.refused}), and C{Mounts} whose sources the daemon made.
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
