"""Offline test images: a small busybox image as a `docker load`-able tar (owned by images).

Built from Debian's busybox-static (/usr/bin/busybox), with no network. The tar holds both the
docker-archive layout (manifest.json + repositories) and the OCI layout (oci-layout, index.json,
blobs/sha256/...) like `docker save` of dockerd 25+, so it also exercises both loaders.

Typical use in an e2e test::

    from tests.helpers.images import load_busybox
    image_id = load_busybox(pyd_daemon)                      # pyd-test/busybox:latest
    load_busybox(pyd_daemon, tag="pyd-t-x/bb:1", extra_files={"/app/hello.txt": "hi\\n"})

The default image is deterministic (fixed mtimes/owners), so its id is the same on every run.
"""

from __future__ import annotations

import gzip as gziplib
import hashlib
import io
import json
import os
import random
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

BUSYBOX = "/usr/bin/busybox"
DEFAULT_TAG = "pyd-test/busybox:latest"
MTIME = 1_700_000_000  # 2023-11-14T22:13:20Z: fixed so the image id is stable
CREATED = "2023-11-14T22:13:20Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\napp:x:1000:\nnogroup:x:65534:\n"


@attrs.frozen
class File:
    """A file (or other entry) to put in an extra layer, with full control over its metadata.

    C{kind}: "file", "dir", "symlink" (C{target}), "hardlink" (C{target}), "whiteout" (deletes
    the path from lower layers), "opaque" (the directory hides its lower contents).
    """

    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    kind: str = "file"
    target: str = ""


FileSpec = bytes | str | File | None  # None = whiteout (delete from lower layers)


@attrs.frozen
class BuiltImage:
    """What L{busybox_image_tar} wrote: the image id (sha256 of the config), its layers."""

    path: str
    id: str
    tag: str | None
    diff_ids: tuple[str, ...]
    config: dict[str, Any]
    config_bytes: bytes
    layers: tuple[bytes, ...] = attrs.field(repr=False)


def _info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.uname = ti.gname = ""
    ti.mtime = MTIME
    return ti


def _add_file(
    tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0
) -> None:
    ti = _info(name, tarfile.REGTYPE, mode, uid, gid)
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))


def _add_dir(tf: tarfile.TarFile, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
    tf.addfile(_info(name.rstrip("/") + "/", tarfile.DIRTYPE, mode, uid, gid))


def base_layer(busybox: str = BUSYBOX) -> bytes:
    """The busybox root filesystem as an uncompressed layer tar (deterministic)."""
    with open(busybox, "rb") as f:
        bb = f.read()
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d, mode in (
            ("bin", 0o755),
            ("dev", 0o755),
            ("etc", 0o755),
            ("home", 0o755),
            ("proc", 0o755),
            ("root", 0o700),
            ("sys", 0o755),
            ("tmp", 0o1777),
            ("usr", 0o755),
            ("usr/bin", 0o755),
            ("usr/sbin", 0o755),
            ("sbin", 0o755),
            ("var", 0o755),
            ("var/tmp", 0o1777),
        ):
            _add_dir(tf, d, mode)
        _add_dir(tf, "home/app", 0o755, 1000, 1000)
        _add_file(tf, "bin/busybox", bb, 0o755)
        for name in sorted(set(applets.stdout.split())):
            if name in ("busybox", "[[") or "/" in name:
                continue
            ti = _info(f"bin/{name}", tarfile.SYMTYPE, 0o777)
            ti.linkname = "busybox"
            tf.addfile(ti)
        _add_file(tf, "etc/passwd", PASSWD.encode())
        _add_file(tf, "etc/group", GROUP.encode())
        _add_file(tf, "etc/hostname", b"busybox\n")
        _add_file(tf, "etc/hosts", b"127.0.0.1\tlocalhost\n")
        _add_file(tf, "etc/resolv.conf", b"")
    return buf.getvalue()


def files_layer(files: Mapping[str, FileSpec]) -> bytes:
    """An uncompressed layer tar with the given entries (parents created as needed)."""
    buf = io.BytesIO()
    seen_dirs: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path in sorted(files):
            spec = files[path]
            name = path.lstrip("/")
            parts = name.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in seen_dirs:
                    seen_dirs.add(d)
                    _add_dir(tf, d)
            if spec is None:
                spec = File(kind="whiteout")
            if isinstance(spec, str):
                spec = spec.encode()
            if isinstance(spec, bytes):
                _add_file(tf, name, spec)
                continue
            base = os.path.basename(name)
            parent = os.path.dirname(name)
            if spec.kind == "file":
                _add_file(tf, name, spec.data, spec.mode, spec.uid, spec.gid)
            elif spec.kind == "dir":
                seen_dirs.add(name)
                _add_dir(tf, name, spec.mode, spec.uid, spec.gid)
            elif spec.kind in ("symlink", "hardlink"):
                kind = tarfile.SYMTYPE if spec.kind == "symlink" else tarfile.LNKTYPE
                ti = _info(name, kind, 0o777 if spec.kind == "symlink" else spec.mode)
                ti.linkname = spec.target
                tf.addfile(ti)
            elif spec.kind == "whiteout":
                _add_file(tf, os.path.join(parent, ".wh." + base), b"", 0o600)
            elif spec.kind == "opaque":
                if name not in seen_dirs:
                    seen_dirs.add(name)
                    _add_dir(tf, name, spec.mode)
                _add_file(tf, os.path.join(name, ".wh..wh..opq"), b"", 0o600)
            else:
                raise ValueError(f"unknown kind {spec.kind!r}")
    return buf.getvalue()


def random_layer(size: int, seed: int, name: str = "data.bin") -> bytes:
    """A layer with one file of C{size} incompressible bytes (seeded, so reproducible)."""
    rng = random.Random(seed)
    data = rng.randbytes(size)
    return files_layer({f"/random/{seed}/{name}": data})


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _familiar_repo_tag(tag: str) -> tuple[str, str]:
    repo, _, t = tag.rpartition(":")
    if not repo or "/" in t:
        repo, t = tag, "latest"
    return repo, t


def _normalized(tag: str) -> str:
    repo, t = _familiar_repo_tag(tag)
    first = repo.split("/", 1)[0]
    if "/" not in repo:
        repo = "docker.io/library/" + repo
    elif not ("." in first or ":" in first or first == "localhost"):
        repo = "docker.io/" + repo
    return f"{repo}:{t}"


def image_config(
    diff_ids: Sequence[str],
    config: Mapping[str, Any] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """An image config in dockerd's shape for the given layers."""
    cfg: dict[str, Any] = {"Env": [PATH_ENV], "Cmd": ["sh"]}
    if config:
        cfg.update(config)
    if history is None:
        history = [
            {"created": CREATED, "created_by": "/bin/sh -c #(nop) ADD busybox rootfs in / "}
        ] + [
            {"created": CREATED, "created_by": f"/bin/sh -c #(nop) ADD layer {i}"}
            for i in range(1, len(diff_ids))
        ]
        history.append(
            {"created": CREATED, "created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True}
        )
    return {
        "architecture": "amd64",
        "config": cfg,
        "created": CREATED,
        "history": list(history),
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }


def write_image_tar(
    path: str | os.PathLike[str],
    layers: Sequence[bytes],
    config: Mapping[str, Any],
    tags: Sequence[str] = (),
    *,
    fmt: str = "both",
    gzip: bool = False,
    config_bytes: bytes | None = None,
) -> str:
    """Write a `docker load` tar for one image; return its id (sha256 of the config bytes).

    C{fmt}: "both" (dockerd 25+ save), "docker" (legacy: <id>/layer.tar dirs, manifest.json and
    repositories only) or "oci" (OCI layout only, tags as index annotations).
    """
    cfg = config_bytes if config_bytes is not None else json.dumps(config, sort_keys=True).encode()
    image_id = _sha(cfg)
    entries: list[tuple[str, bytes]] = []
    layer_paths: list[str] = []
    if fmt == "docker":
        prev = ""
        for data in layers:
            v1 = hashlib.sha256((prev + _sha(data)).encode()).hexdigest()
            prev = v1
            entries.append((f"{v1}/VERSION", b"1.0"))
            entries.append((f"{v1}/json", json.dumps({"id": v1}).encode()))
            entries.append((f"{v1}/layer.tar", data))
            layer_paths.append(f"{v1}/layer.tar")
        cfg_name = image_id[7:] + ".json"
        entries.append((cfg_name, cfg))
    else:
        for data in layers:
            name = "blobs/sha256/" + _sha(data)[7:]
            layer_paths.append(name)
            entries.append((name, data))
        cfg_name = "blobs/sha256/" + image_id[7:]
        entries.append((cfg_name, cfg))
    if fmt in ("both", "oci"):
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": image_id,
                "size": len(cfg),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _sha(d),
                    "size": len(d),
                }
                for d in layers
            ],
        }
        mbytes = json.dumps(manifest).encode()
        entries.append(("blobs/sha256/" + _sha(mbytes)[7:], mbytes))
        descs = []
        for t in tags or [None]:
            desc: dict[str, Any] = {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": _sha(mbytes),
                "size": len(mbytes),
            }
            if t:
                desc["annotations"] = {
                    "io.containerd.image.name": _normalized(t),
                    "org.opencontainers.image.ref.name": _familiar_repo_tag(t)[1],
                }
            descs.append(desc)
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": descs,
        }
        entries.append(("index.json", json.dumps(index).encode()))
        entries.append(("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'))
    if fmt in ("both", "docker"):
        mf = [{"Config": cfg_name, "RepoTags": list(tags) or None, "Layers": layer_paths}]
        entries.append(("manifest.json", json.dumps(mf).encode()))
        repos: dict[str, dict[str, str]] = {}
        for t in tags:
            r, tg = _familiar_repo_tag(t)
            repos.setdefault(r, {})[tg] = hashlib.sha256(layer_paths[-1].encode()).hexdigest()
        if repos:
            entries.append(("repositories", json.dumps(repos).encode()))
    with open(path, "wb") as raw:
        out: Any = gziplib.GzipFile(fileobj=raw, mode="wb", mtime=0) if gzip else raw
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
            dirs: set[str] = set()
            for name, data in entries:
                d = os.path.dirname(name)
                parts = d.split("/") if d else []
                for i in range(1, len(parts) + 1):
                    sub = "/".join(parts[:i])
                    if sub not in dirs:
                        dirs.add(sub)
                        _add_dir(tf, sub)
                _add_file(tf, name, data)
        if gzip:
            out.close()
    return image_id


def busybox_image_tar(
    path: str | os.PathLike[str],
    tag: str | None = DEFAULT_TAG,
    *,
    extra_files: Mapping[str, FileSpec] | None = None,
    extra_layers: Sequence[Mapping[str, FileSpec]] = (),
    raw_layers: Sequence[bytes] = (),
    random_layers: Sequence[int] = (),
    config: Mapping[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    fmt: str = "both",
    gzip: bool = False,
) -> BuiltImage:
    """Write a `docker load`-able tar of a busybox image to C{path}.

    Layers, bottom to top: the busybox rootfs; C{extra_files} as one layer; each of
    C{extra_layers}; each raw tar of C{raw_layers}; one layer of random bytes per size in
    C{random_layers} (seeded by position). C{config} entries override the image's
    C{config} (Env, Cmd, Entrypoint, Labels, WorkingDir, User, ExposedPorts, Volumes...).
    C{tags} (several) wins over C{tag}; C{tag=None} writes an untagged image.
    """
    layers = [base_layer()]
    if extra_files:
        layers.append(files_layer(extra_files))
    layers.extend(files_layer(f) for f in extra_layers)
    layers.extend(raw_layers)
    layers.extend(random_layer(size, seed=i + 1) for i, size in enumerate(random_layers))
    diff_ids = [_sha(d) for d in layers]
    cfg = image_config(diff_ids, config)
    all_tags = list(tags) if tags is not None else ([tag] if tag else [])
    image_id = write_image_tar(path, layers, cfg, all_tags, fmt=fmt, gzip=gzip)
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    return BuiltImage(
        path=str(path),
        id=image_id,
        tag=all_tags[0] if all_tags else None,
        diff_ids=tuple(diff_ids),
        config=cfg,
        config_bytes=cfg_bytes,
        layers=tuple(layers),
    )


def load_busybox(daemon: Any, tag: str | None = DEFAULT_TAG, **kwargs: Any) -> str:
    """Build a busybox image tar (see L{busybox_image_tar}) and `docker load -i` it into
    C{daemon} (a L{tests.helpers.daemon.PydDaemon}); return the image id C{sha256:...}."""
    fd, tmp = tempfile.mkstemp(prefix="pyd-bb-", suffix=".tar", dir=str(daemon.base))
    os.close(fd)
    try:
        built = busybox_image_tar(tmp, tag, **kwargs)
        daemon.docker("load", "-q", "-i", tmp)
        return built.id
    finally:
        Path(tmp).unlink(missing_ok=True)
