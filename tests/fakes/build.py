"""Fakes for the builder's seams: an image store keeping each image's root filesystem as a real
directory, and a container runner that "runs" a command with a Python function."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from pyd.core.errors import NotFound
from pyd.core.records import Change, Image
from pyd.engine.contracts import BuildImages, CommitMeta


def _clone(src: str, dst: str) -> None:
    """Copy a tree keeping owners and modes (like a layer would)."""
    subprocess.run(["cp", "-a", src, dst], check=True)


def _same_tree(a: str | None, b: str) -> bool:
    """Whether two trees hold the same names and contents (an empty diff)."""

    def snap(root: str | None) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        if root is None:
            return out
        for d, dirs, files in os.walk(root):
            for n in dirs:
                out[os.path.relpath(os.path.join(d, n), root)] = None
            for n in files:
                p = os.path.join(d, n)
                with open(p, "rb") as f:
                    out[os.path.relpath(p, root)] = f.read()
        return out

    return snap(a) == snap(b)


RunFn = Callable[[list[str], dict[str, Any], str], tuple[bytes, int]]


def _normalise(ref: str) -> str:
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last else ref + ":latest"


class FakeBuildImages:
    """L{pyd.engine.contracts.BuildImages} in memory, rootfs trees under C{root}."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.images: dict[str, Image] = {}
        self.cache_keys: dict[str, tuple[str | None, str | None]] = {}
        self.tags: dict[str, str] = {}
        self.layers: dict[str, str] = {}
        self.layer_images: dict[str, str | None] = {}
        self.commits = 0
        self.tops: list[dict[str, Any]] = []
        self.meta_commits = 0  # metadata-only steps (commit_config)
        os.makedirs(os.path.join(root, "images"), exist_ok=True)
        os.makedirs(os.path.join(root, "layers"), exist_ok=True)

    def image_dir(self, image_id: str) -> str:
        return os.path.join(self.root, "images", image_id.split(":")[-1])

    def add_base(self, ref: str, files: dict[str, bytes | str], config: dict[str, Any]) -> Image:
        """A base image with the given files (a value ending in C{->} makes a symlink)."""
        cfg = {
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
            "history": [{"created_by": "base"}],
        }
        img = self._store(cfg, None, None)
        d = self.image_dir(img.id)
        for path, content in files.items():
            full = os.path.join(d, path.lstrip("/"))
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if isinstance(content, str) and content.startswith("->"):
                os.symlink(content[2:], full)
            else:
                with open(full, "wb") as f:
                    f.write(content.encode() if isinstance(content, str) else content)
        self.tags[_normalise(ref)] = img.id
        return img

    def _store(self, cfg: dict[str, Any], parent: str | None, key: str | None) -> Image:
        blob = json.dumps(cfg, sort_keys=True).encode()
        iid = "sha256:" + hashlib.sha256(blob).hexdigest()
        img = Image(
            id=iid,
            config=copy.deepcopy(cfg),
            repo_tags=(),
            repo_digests=(),
            size=0,
            created=0,
            parent_id=parent,
            diff_ids=tuple(cfg.get("rootfs", {}).get("diff_ids", [])),
        )
        self.images[iid] = img
        self.cache_keys[iid] = (parent, key)
        os.makedirs(self.image_dir(iid), exist_ok=True)
        return img

    async def resolve(self, ref: str) -> Image:
        if ref in self.images:
            return self.images[ref]
        iid = self.tags.get(_normalise(ref))
        if iid is None:
            for i in self.images:
                if i.split(":")[-1].startswith(ref) and len(ref) >= 4:
                    return self.images[i]
            raise NotFound(f"No such image: {ref}")
        return self.images[iid]

    async def find_child(self, parent_id: str | None, cache_key: str) -> Image | None:
        for iid, (p, k) in self.cache_keys.items():
            if p == parent_id and k == cache_key:
                return self.images[iid]
        return None

    async def create_rw_layer(self, layer_id: str, image_id: str | None) -> None:
        d = os.path.join(self.root, "layers", layer_id)
        if image_id:
            _clone(self.image_dir(image_id), d)
        else:
            os.makedirs(d)
        self.layers[layer_id] = d
        self.layer_images[layer_id] = image_id

    async def mount_rw_layer(self, layer_id: str) -> str:
        return self.layers[layer_id]

    async def remove_rw_layer(self, layer_id: str) -> None:
        d = self.layers.pop(layer_id, None)
        if d:
            shutil.rmtree(d, ignore_errors=True)

    async def commit(
        self,
        container_id: str,
        image_config: dict[str, Any],
        meta: CommitMeta,
        repo_tag: str | None = None,
        parent_id: str | None = None,
        cache_key: str | None = None,
    ) -> Image:
        layer_id, config = container_id, image_config
        created_by, author = meta.created_by, meta.author
        if layer_id not in self.layers:
            raise NotFound(f"No such container: {layer_id}")
        if parent_id is None:
            parent_id = self.layer_images.get(layer_id)
        self.commits += 1
        self.tops.append(dict(meta.top or {}))
        base_id = self.layer_images.get(layer_id)
        base: dict[str, Any] = (
            copy.deepcopy(self.images[base_id].config)
            if base_id
            else {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        )
        layer_dir = self.layers[layer_id]
        base_dir = self.image_dir(base_id) if base_id else None
        empty = _same_tree(base_dir, layer_dir)
        entry: dict[str, Any] = {"created_by": created_by, "n": self.commits}
        if author:
            entry["author"] = author
            base["author"] = author
        if empty and meta.empty_layer_ok:
            entry["empty_layer"] = True
        else:
            base["rootfs"]["diff_ids"] = [
                *base["rootfs"]["diff_ids"],
                "sha256:" + hashlib.sha256(f"{layer_id}{self.commits}".encode()).hexdigest(),
            ]
        base["history"] = [*(base.get("history") or []), entry]
        base["config"] = copy.deepcopy(config)
        img = self._store(base, parent_id, cache_key)
        shutil.rmtree(self.image_dir(img.id))
        _clone(layer_dir, self.image_dir(img.id))
        return img

    async def unmount_rw_layer(self, container_id: str) -> None:
        pass  # the layer is a plain directory: nothing is mounted

    async def changes(self, container_id: str) -> list[Change]:
        raise NotImplementedError("the builder does not diff layers")

    async def commit_config(
        self,
        parent_id: str | None,
        image_config: dict[str, Any],
        created_by: str,
        author: str = "",
        cache_key: str | None = None,
        extra_top: dict[str, Any] | None = None,
    ) -> Image:
        self.meta_commits += 1
        layer_id = "meta-" + str(self.meta_commits)
        await self.create_rw_layer(layer_id, parent_id)
        try:
            meta = CommitMeta(created_by, author, top=extra_top, empty_layer_ok=True)
            return await self.commit(
                layer_id, image_config, meta, parent_id=parent_id, cache_key=cache_key
            )
        finally:
            await self.remove_rw_layer(layer_id)

    async def tag(self, source: str, repo: str, tag: str | None) -> str:
        name = f"{repo}:{tag or 'latest'}"
        self.tags[name] = (await self.resolve(source)).id
        return name


class FakeBuildContainers:
    """L{pyd.engine.builder.builder.BuildContainers}: C{run_fn(cmd, config, rootfs)} plays the
    process, returning (output, exit code); it may change files under C{rootfs}."""

    def __init__(self, images: FakeBuildImages, run_fn: RunFn) -> None:
        self.images = images
        self.run_fn = run_fn
        self.created: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        self.removed: list[str] = []
        self._n = 0

    async def create(
        self, image_id: str, config: dict[str, Any], host_config: dict[str, Any]
    ) -> str:
        self._n += 1
        cid = hashlib.sha256(f"c{self._n}{image_id}".encode()).hexdigest()
        await self.images.create_rw_layer(cid, image_id)
        self.created[cid] = (image_id, config, host_config)
        return cid

    async def run(
        self,
        container_id: str,
        output: Callable[[bytes], None],
        cancelled: Callable[[], bool],
    ) -> int | None:
        _, config, _ = self.created[container_id]
        out, code = self.run_fn(list(config["Cmd"]), config, self.images.layers[container_id])
        if out:
            output(out)
        if cancelled():
            return None
        return code

    async def remove(self, container_id: str) -> None:
        if container_id not in self.created:
            raise NotFound(f"No such container: {container_id}")
        del self.created[container_id]
        self.removed.append(container_id)
        await self.images.remove_rw_layer(container_id)

    def resolve_id(self, ref: str) -> str:
        """Exact ids or unique prefixes of the step containers made so far."""
        found = [cid for cid in self.created if cid.startswith(ref)] if ref else []
        if len(found) != 1:
            raise NotFound(f"No such container: {ref}")
        return found[0]


class FakeProgress:
    """Collects what a build reports."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.auxes: list[str] = []
        self.cancelled = False

    def stream(self, text: str) -> None:
        self.lines.append(text)

    def aux(self, image_id: str) -> None:
        self.auxes.append(image_id)

    def pull_status(self, status: dict[str, Any]) -> None:
        self.lines.append(json.dumps(status))

    @property
    def text(self) -> str:
        return "".join(self.lines)


# mypy checks the fake against the seam it stands in for
_IS_BUILD_IMAGES: type[BuildImages] = FakeBuildImages
