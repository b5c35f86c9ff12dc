"""The steps that change files (layer: engine): RUN in a real container with its mounts and
options, COPY and ADD (sources, heredocs, checksums, ownership) into a fresh writable layer.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
from typing import Any

import attrs
from twisted.internet.defer import CancelledError
from twisted.logger import Logger

from pyd.core.deferreds import shield
from pyd.core.errors import PydError
from pyd.engine.builder import copier, frontend, fs, lexer, mounts
from pyd.engine.builder.base import (
    PROXY_ARGS,
    BuildCancelled,
    BuildFailed,
    _StageState,
    step_host_config,
)
from pyd.engine.builder.cache import _BuildCache
from pyd.engine.builder.ignore import PatternMatcher
from pyd.engine.builder.parser import (
    Instruction,
)
from pyd.engine.builder.runstep import StepMounts, StepRefused, step_overrides

log = Logger()


class _BuildSteps(_BuildCache):
    """RUN, COPY and ADD."""

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
        cid = await self._create_step_container(st.image_id, run_cfg, host_config)
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
                # Shielded: the HTTP layer's cancel for the same departed client may land
                # while the removal runs, and must not stop it halfway (the container stayed).
                await shield(self.svc.containers.remove(cid), "removing a build's container")
            except PydError as e:
                log.warn("removing cancelled build container {cid}: {err}", cid=cid, err=e)
            raise BuildCancelled()
        if code != 0:
            raise BuildFailed(
                f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code=code
            )
        if step.stubs:
            await step.clean(await self.svc.images.mount_rw_layer(cid))
        await self._commit_layer(st, cid, save_cmd, key, container=cid, probe_config=probe_cfg)

    async def _create_step_container(
        self, image_id: str, config: dict[str, Any], host_config: dict[str, Any]
    ) -> str:
        """Create a RUN's container and list it for removal. A cancel (the client went away)
        during the create does not stop it halfway; the container it still makes is removed."""
        assert self.svc.containers is not None
        containers = self.svc.containers
        gone = False

        async def create() -> str:
            cid = await containers.create(image_id, config, host_config)
            if gone:
                await containers.remove(cid)
            return cid

        try:
            cid = await shield(create(), "creating a build's container")
        except CancelledError:
            gone = True
            raise
        self.tmp_containers.append(cid)
        return cid

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
                    max_unpack=self.svc.max_layer_size,
                    space_check=self._space_check(),
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
