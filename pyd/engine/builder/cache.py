"""The classic builder's cache and commits (layer: engine): a step's cache key, reuse of an image
whose parent and key match (or one from C{--cache-from}), and committing a step's layer or config
as the next image.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from typing import Any

from twisted.logger import Logger

from pyd.core.errors import NotFound
from pyd.core.records import Image
from pyd.engine.builder import copier
from pyd.engine.builder.base import (
    _BuildBase,
    _full_config,
    _owner_for,
    _StageState,
    step_host_config,
)
from pyd.engine.contracts import CommitMeta

log = Logger()


class _BuildCache(_BuildBase):
    """Cache keys, cache probes and commits."""

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
            meta = CommitMeta(" ".join(cmd), st.maintainer, top=top, empty_layer_ok=True)
            img = await self.svc.images.commit(
                layer, cfg, meta, parent_id=st.image_id or None, cache_key=key
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
