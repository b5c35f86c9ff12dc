"""Crash consistency: SIGKILL a real pyd daemon in the middle of an operation, restart it on the
same data root, and check what it holds (owned by the e2e tests and the bench's long mode).

Plain synchronous code, no reactor. L{CrashRig} owns one L{PydDaemon} (root network namespace,
so C{--ip-forward=false --ip-masq=false}), a loopback registry and the offline inputs; each
L{Operation} runs the real C{docker} CLI. One iteration (L{CrashRig.iteration}):

  1. put the operation's precondition in place (L{Operation.pre}, through the API);
  2. start the CLI, SIGKILL the daemon alone after a seeded random delay (its conmon monitors and
     containers live on, as with a real crash) or once the operation's own trigger fires;
  3. restart the daemon on the same data and exec roots;
  4. check every invariant (L{check_invariants}): nothing committed lost, nothing half-visible;
  5. put the precondition back and repeat the operation: it must succeed; check again.

The invariants (each violation is one line naming the object):
  - the database passes C{PRAGMA integrity_check} and C{PRAGMA foreign_key_check};
  - every image is whole: its id is the sha256 of its config, its layer chain matches the config's
    diff ids, every layer's directory is there and its stored tar hashes to its diff id, and the
    API lists and inspects it; every content-addressed blob hashes to its name;
  - every container has its bundle directory and its writable layer; its state is what
    conmon/crun say (running exactly when its conmon and crun state say so); no conmon, crun state,
    network namespace or bundle directory of a container the daemon does not know;
  - no overlay or other mount under the data or exec root for an unknown container or volume;
  - no bridge of an unknown network (one holding an address of this daemon's pools), no veth of a
    container that is not running on that network, no nft rule naming an unknown bridge or an
    address no running container holds;
  - no staging directory, temp file (C{*.tmp}, C{tmp/} contents, trash) or layer/volume/writable
    layer directory without its row left in the data root.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import ipaddress
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyd.drivers.storage import tarsplit
from tests.helpers.daemon import DOCKER, PydDaemon, _host_routes
from tests.helpers.images import (
    DEFAULT_TAG,
    base_layer,
    busybox_image_tar,
    image_config,
    random_layer,
    write_image_tar,
)
from tests.helpers.registry import Registry

MIB = 1 << 20
IMAGE = DEFAULT_TAG  # the busybox test image every container runs


# --- the daemon's data as the checks read it --------------------------------------------------


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class DigestCache:
    """Digests of files already hashed, keyed by (inode, size, mtime): a 200 MiB layer is hashed
    once per run, not once per check."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int, int], str] = {}

    def digest(self, path: str) -> str:
        st = os.stat(path)
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self._known:
            self._known[key] = _sha256_file(path)
        return self._known[key]

    def layer_digest(self, layer_dir: str) -> str:
        """The digest of the tar a stored layer gives back (rebuilt from its tar-split record),
        keyed by the record's file: a layer's files never change once it is stored.

        @raise tarsplit.SplitError: the tar cannot be rebuilt."""
        st = os.stat(os.path.join(layer_dir, tarsplit.SPLIT_NAME))
        key = (layer_dir, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self._known:
            h = hashlib.sha256()
            with tarsplit.open_layer_tar(layer_dir) as tar:
                for chunk in tar.chunks():
                    h.update(chunk)
            self._known[key] = "sha256:" + h.hexdigest()
        return self._known[key]


def _db_rows(db: str, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _conmons(data_root: str) -> dict[str, int]:
    """Container id -> pid of every conmon whose bundle lies under C{data_root}/containers."""
    out: dict[str, int] = {}
    prefix = os.path.join(data_root, "containers") + "/"
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"conmon"):
            continue
        args = [a.decode(errors="replace") for a in argv]
        with contextlib.suppress(ValueError, IndexError):
            bundle = args[args.index("-b") + 1]
            if bundle.startswith(prefix):
                out[args[args.index("-c") + 1]] = int(pid)
    return out


def _mounts_under(*roots: str) -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount below one of C{roots} (this mount namespace)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            point = parts[4].replace("\\040", " ")
            fstype = parts[parts.index("-") + 1]
            if any(point == r or point.startswith(r + "/") for r in roots):
                out.append((point, fstype))
    return out


def _links(kind: str) -> list[dict[str, Any]]:
    r = subprocess.run(
        ["ip", "-j", "-d", "addr", "show", "type", kind], capture_output=True, text=True
    )
    return json.loads(r.stdout or "[]")  # type: ignore[no-any-return]


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def veth_name(container_id: str, network_id: str) -> str:
    """The host-side veth pyd names for a container on a network (engine/networks/base.py)."""
    return "veth" + hashlib.sha256((container_id + network_id).encode()).hexdigest()[:7]


@dataclass
class Seen:
    """Ids the rig has seen over the run: an orphan veth of a container since removed is still
    recognised by its name."""

    containers: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)


def check_invariants(
    d: PydDaemon, pools: list[ipaddress.IPv4Network], seen: Seen, digests: DigestCache
) -> list[str]:
    """Every invariant of the module docstring, on a running daemon; returns the violations."""
    bad: list[str] = []
    data, exec_root = d.data_root, d.exec_root
    db = os.path.join(data, "pyd.db")

    # The database itself.
    for (row,) in _db_rows(db, "PRAGMA integrity_check"):
        if row != "ok":
            bad.append(f"db integrity_check: {row}")
    for row in _db_rows(db, "PRAGMA foreign_key_check"):
        bad.append(f"db foreign_key_check: {row}")

    layers = {
        chain: (diff_id, parent, cache_id)
        for chain, diff_id, parent, cache_id in _db_rows(
            db, "SELECT chain_id, diff_id, parent, cache_id FROM layers"
        )
    }
    images = _db_rows(db, "SELECT id, config, top_layer FROM images")
    containers = {cid: status for cid, status in _db_rows(db, "SELECT id, status FROM containers")}
    rw_layers = {r[0] for r in _db_rows(db, "SELECT container_id FROM rw_layers")}
    networks = {
        nid: (bridge, ipam)
        for nid, bridge, ipam in _db_rows(db, "SELECT id, bridge, ipam FROM networks")
    }
    endpoints = _db_rows(db, "SELECT network_id, container_id, ipv4, config FROM endpoints")
    volumes = {name for (name,) in _db_rows(db, "SELECT name FROM volumes")}
    seen.containers |= set(containers)
    seen.networks |= set(networks)
    storage = os.path.join(data, "storage")

    # Images: whole, and what the API shows.
    for image_id, config, top in images:
        cfg_bytes = config.encode() if isinstance(config, str) else config
        if "sha256:" + hashlib.sha256(cfg_bytes).hexdigest() != image_id:
            bad.append(f"image {image_id[:19]}: config does not hash to its id")
        chain: list[str] = []
        cur = top
        while cur is not None:
            if cur not in layers:
                bad.append(f"image {image_id[:19]}: layer {cur[:19]} has no row")
                break
            chain.append(cur)
            cur = layers[cur][1]
        chain.reverse()
        try:
            want = json.loads(cfg_bytes)["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError):
            want = None
        if want is not None and [layers[c][0] for c in chain if c in layers] != want:
            bad.append(f"image {image_id[:19]}: layer chain differs from its config's diff ids")
        for c in chain:
            diff_id, _parent, cache_id = layers[c]
            ldir = os.path.join(storage, "layers", cache_id)
            if not os.path.isdir(os.path.join(ldir, "diff")):
                bad.append(f"image {image_id[:19]}: layer {c[:19]} has no diff directory")
                continue
            if not os.path.isfile(os.path.join(ldir, tarsplit.SPLIT_NAME)):
                bad.append(f"image {image_id[:19]}: layer {c[:19]} has no layer.split")
                continue
            try:
                rebuilt = digests.layer_digest(ldir)
            except tarsplit.SplitError as e:
                bad.append(f"image {image_id[:19]}: layer {c[:19]}'s tar cannot be rebuilt: {e}")
                continue
            if rebuilt != diff_id:
                bad.append(
                    f"image {image_id[:19]}: layer {c[:19]}'s tar does not hash to its diff id"
                )
    status, _, body = d.request("GET", "/images/json?all=1")
    if status != 200:
        bad.append(f"GET /images/json: {status}")
    else:
        for img in json.loads(body):
            st, _, _ = d.request("GET", f"/images/{img['Id']}/json")
            if st != 200:
                bad.append(f"image {img['Id'][:19]} listed but inspect says {st}")
    for chain_id, (_diff_id, _parent, cache_id) in layers.items():
        if not os.path.isdir(os.path.join(storage, "layers", cache_id, "diff")):
            bad.append(f"layer {chain_id[:19]}: row without its directory")
    blobdir = os.path.join(storage, "blobs", "sha256")
    for name in os.listdir(blobdir) if os.path.isdir(blobdir) else ():
        if digests.digest(os.path.join(blobdir, name)) != "sha256:" + name:
            bad.append(f"blob {name[:12]}: content does not hash to its name")

    # Directories without rows, staging and temp files.
    known_cache = {v[2] for v in layers.values()}
    for sub, known, what in (
        ("storage/layers", known_cache, "layer directory"),
        ("storage/containers", rw_layers, "writable layer"),
        ("containers", set(containers), "container directory"),
        ("volumes", volumes, "volume directory"),
    ):
        p = os.path.join(data, sub)
        for name in os.listdir(p) if os.path.isdir(p) else ():
            if name not in known:
                bad.append(f"{what} {sub}/{name} has no row")
    for sub in ("storage/tmp", "storage/blobs/tmp", "tmp/distribution", "tmp/streams"):
        p = os.path.join(data, sub)
        for name in os.listdir(p) if os.path.isdir(p) else ():
            bad.append(f"staging left: {sub}/{name}")
    skip = {
        os.path.join(storage, "layers"),
        os.path.join(storage, "containers"),
        os.path.join(data, "volumes"),
    }
    for top, dirs, files in os.walk(data):
        if top in skip:
            dirs[:] = []
            continue
        for f in files:
            if f.endswith(".tmp") or ".tmp." in f:
                bad.append(f"temp file left: {os.path.relpath(os.path.join(top, f), data)}")
    for sub in ("storage/containers", "volumes"):
        p = os.path.join(data, sub)
        for name in os.listdir(p) if os.path.isdir(p) else ():
            for f in os.listdir(os.path.join(p, name)):
                if f.endswith(".tmp") or f.startswith(".trash") or f.endswith(".stage"):
                    bad.append(f"temp file left: {sub}/{name}/{f}")

    # Containers: bundle, writable layer, state against conmon and crun.
    conmons = _conmons(data)
    running: set[str] = set()
    status, _, body = d.request("GET", "/containers/json?all=1")
    listed = {c["Id"] for c in json.loads(body)} if status == 200 else set()
    if status != 200:
        bad.append(f"GET /containers/json: {status}")
    for cid in containers:
        short = cid[:12]
        if cid not in listed:
            bad.append(f"container {short}: has a row but is not listed")
        if not os.path.isdir(os.path.join(data, "containers", cid)):
            bad.append(f"container {short}: no bundle directory")
        if cid not in rw_layers or not os.path.isdir(os.path.join(storage, "containers", cid)):
            bad.append(f"container {short}: no writable layer")
        st, _, ib = d.request("GET", f"/containers/{cid}/json")
        if st != 200:
            bad.append(f"container {short}: inspect says {st}")
            continue
        state = json.loads(ib)["State"]
        if state["Status"] not in ("created", "running", "paused", "exited", "dead"):
            bad.append(f"container {short}: dangling state {state['Status']}")
        crun_state = _crun_status(exec_root, cid)
        if state["Running"]:
            running.add(cid)
            if cid not in conmons:
                bad.append(f"container {short}: running, but no conmon")
            if crun_state not in ("running", "paused"):
                bad.append(f"container {short}: running, but crun says {crun_state}")
            if not state["Pid"] or not os.path.exists(f"/proc/{state['Pid']}"):
                bad.append(f"container {short}: running, but its pid {state['Pid']} is gone")
        else:
            if cid in conmons:
                bad.append(f"container {short}: {state['Status']}, but its conmon lives")
            if crun_state in ("running", "paused"):
                bad.append(f"container {short}: {state['Status']}, but crun says {crun_state}")
    for cid in conmons:
        if cid not in containers:
            bad.append(f"conmon {conmons[cid]} of unknown container {cid[:12]}")
    crun_root = os.path.join(exec_root, "crun")
    for name in os.listdir(crun_root) if os.path.isdir(crun_root) else ():
        if name not in containers:
            bad.append(f"crun state of unknown container {name[:12]}")
    netns_dir = os.path.join(exec_root, "netns")
    for name in os.listdir(netns_dir) if os.path.isdir(netns_dir) else ():
        if name not in running:
            bad.append(f"network namespace of a container not running: {name[:12]}")

    # Mounts under the data and exec roots.
    for point, fstype in _mounts_under(data, exec_root):
        rel = os.path.relpath(point, data) if point.startswith(data) else None
        erel = os.path.relpath(point, exec_root) if point.startswith(exec_root) else None
        parts = (rel or erel or "").split("/")
        if rel is not None and parts[:2] == ["storage", "containers"] and len(parts) > 2:
            if parts[2] not in containers:
                bad.append(f"{fstype} mount of unknown container: {rel}")
        elif rel is not None and parts[0] == "containers" and len(parts) > 1:
            if parts[1] not in containers:
                bad.append(f"{fstype} mount of unknown container: {rel}")
        elif rel is not None and parts[0] == "volumes" and len(parts) > 1:
            if parts[1] not in volumes:
                bad.append(f"{fstype} mount of unknown volume: {rel}")
        elif erel is not None and parts[0] == "netns":
            if len(parts) > 1 and parts[1] not in running:
                bad.append(f"netns mount of a container not running: {erel}")
        elif erel is not None and parts[0] == "mounts" and len(parts) > 1:
            if not any(p in containers for p in parts):
                bad.append(f"{fstype} staging mount of unknown container: {erel}")
        else:
            bad.append(f"unexpected {fstype} mount: {point}")

    # Bridges, veths and the firewall table.
    bridges = {b for b, _ in networks.values() if b}
    bridges.add(d.bridge)
    ours = []
    for link in _links("bridge"):
        addrs = [
            ipaddress.ip_address(a["local"])
            for a in link.get("addr_info", [])
            if a["family"] == "inet"
        ]
        if any(any(a in p for p in pools) for a in addrs):
            ours.append(link["ifname"])
            if link["ifname"] not in bridges:
                bad.append(f"bridge {link['ifname']} of no known network")
    for nid, (bridge, _ipam) in networks.items():
        if bridge and bridge != d.bridge and bridge not in ours:
            bad.append(f"network {nid[:12]}: its bridge {bridge} is missing")
    active = {}
    ips = set()
    for nid, cid, ipv4, _config in endpoints:
        if ipv4 is None:
            continue
        if cid not in running:
            bad.append(f"endpoint of container {cid[:12]} on {nid[:12]} holds {ipv4}, not running")
        active[veth_name(cid, nid)] = (cid, nid)
        ips.add(ipv4.split("/")[0])
    candidates = {veth_name(c, n) for c in seen.containers for n in seen.networks}
    for link in _links("veth"):
        name = link["ifname"]
        if (link.get("master") in bridges or name in candidates) and name not in active:
            bad.append(f"veth {name} of no running endpoint (master {link.get('master')})")
    r = subprocess.run(
        ["nft", "-j", "list", "table", "ip", d.nft_table], capture_output=True, text=True
    )
    if r.returncode == 0:
        subnets = set()
        for _bridge, ipam in networks.values():
            cfg = json.loads(ipam) if isinstance(ipam, str) else ipam
            for pool in (cfg or {}).get("Config") or (cfg or {}).get("pools") or []:
                if isinstance(pool, dict):
                    for v in pool.values():
                        if isinstance(v, str):
                            subnets.add(v.split("/")[0])
        for s in set(_strings(json.loads(r.stdout))):
            if s.startswith(("br-", "pydt", "veth")) and s not in bridges and s not in active:
                bad.append(f"nft rule names unknown interface {s}")
            with contextlib.suppress(ValueError):
                a = ipaddress.ip_address(s)
                if any(a in p for p in pools) and s not in ips and s not in subnets:
                    bad.append(f"nft rule names {s}, which no running container holds")
    return bad


def _crun_status(exec_root: str, cid: str) -> str:
    if not os.path.isdir(os.path.join(exec_root, "crun", cid)):
        return "absent"
    r = subprocess.run(
        ["crun", "--root", os.path.join(exec_root, "crun"), "state", cid],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        return "unreadable"
    return str(json.loads(r.stdout).get("status", "?"))


# --- inputs made offline -----------------------------------------------------------------------


def _free_pool() -> ipaddress.IPv4Network:
    """A 10.1xx.0.0/16 no host route overlaps: the rig's daemon takes its networks from it, so a
    bridge holding an address in it is this daemon's (other test daemons use 10.2xx)."""
    routes = []
    for r in _host_routes():
        with contextlib.suppress(ValueError):
            routes.append(ipaddress.ip_network(r, strict=False))
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{random.randint(100, 199)}.0.0/16")
        if not any(net.overlaps(r) for r in routes):
            return net  # type: ignore[return-value]
    raise RuntimeError("no free 10.1xx.0.0/16 for the crash rig's daemon")


def _image_tar(path: str, layer_sizes: list[int], tag: str, seed: int) -> str:
    """A docker-archive (legacy layout) of busybox plus layers of seeded random bytes (they do
    not compress: a 200 MiB image is 200 MiB to upload and extract); returns the image id."""
    layers = [base_layer()] + [
        random_layer(s, seed=seed * 100 + i) for i, s in enumerate(layer_sizes)
    ]
    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    return write_image_tar(path, layers, image_config(diff_ids), [tag], fmt="docker")


def seed_registry(reg: Registry, repo: str, tag: str, layer_sizes: list[int], seed: int) -> str:
    """Push an image (busybox + gzip'd random layers) straight into the registry; its manifest
    digest."""
    layers = [base_layer()] + [
        random_layer(s, seed=seed * 100 + i) for i, s in enumerate(layer_sizes)
    ]
    descs = []
    for plain in layers:
        blob = gzip.compress(plain, compresslevel=1, mtime=0)
        descs.append(
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(blob),
                "digest": reg.put_blob(repo, blob),
            }
        )
    cfg = json.dumps(
        image_config(["sha256:" + hashlib.sha256(x).hexdigest() for x in layers])
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(cfg),
                "digest": reg.put_blob(repo, cfg),
            },
            "layers": descs,
        }
    ).encode()
    return reg.put_manifest(
        repo, tag, manifest, "application/vnd.docker.distribution.manifest.v2+json"
    )


# --- operations --------------------------------------------------------------------------------


@dataclass
class Operation:
    """One interruptible operation: C{pre} makes its precondition hold from any state the daemon
    may be in (so a repeat starts where the interrupted one did); C{argv} is the docker CLI."""

    name: str
    pre: Callable[[CrashRig], None]
    argv: Callable[[CrashRig], list[str]]
    # A kill trigger of its own (polled while the operation runs), else a random delay.
    trigger: Callable[[CrashRig], bool] | None = None
    # Checks of its own right after the restart (violations, as check_invariants returns them).
    after_restart: Callable[[CrashRig], list[str]] | None = None


def _rm_container(rig: CrashRig, name: str) -> None:
    rig.docker("rm", "-f", name, check=False)


def _ensure_running(rig: CrashRig, name: str) -> None:
    r = rig.docker("inspect", "-f", "{{.State.Running}}", name, check=False)
    if r.returncode == 0 and r.stdout.strip() == "true":
        return
    _rm_container(rig, name)
    rig.docker("run", "-d", "--name", name, "--network", "crash-net", IMAGE, "sleep", "100000")


def _ensure_network(rig: CrashRig, name: str) -> None:
    if rig.docker("network", "inspect", name, check=False).returncode != 0:
        rig.docker("network", "create", name)


def _drop_network(rig: CrashRig, name: str) -> None:
    if rig.docker("network", "inspect", name, check=False).returncode == 0:
        rig.docker("network", "rm", name)


def _rmi(rig: CrashRig, ref: str) -> None:
    rig.docker("rmi", "-f", ref, check=False)


def _pre_connect(rig: CrashRig) -> None:
    _ensure_network(rig, "crash-net")
    _ensure_network(rig, "crash-conn")
    _ensure_running(rig, "crash-c")
    rig.docker("network", "disconnect", "-f", "crash-conn", "crash-c", check=False)


def _rm_volume(rig: CrashRig, name: str) -> None:
    rig.docker("volume", "rm", "-f", name, check=False)


def _pre_volume_rm(rig: CrashRig) -> None:
    rig.docker("volume", "create", "crash-vol-rm")


def _pre_rm(rig: CrashRig) -> None:
    _ensure_network(rig, "crash-net")
    _ensure_running(rig, "crash-rm")


def _pre_commit(rig: CrashRig) -> None:
    _ensure_network(rig, "crash-net")
    _ensure_running(rig, "crash-c")
    rig.docker("exec", "crash-c", "sh", "-c", "echo $RANDOM > /changed")
    _rmi(rig, "crash/commit:1")


def _pre_run(rig: CrashRig) -> None:
    _ensure_network(rig, "crash-net")
    _rm_container(rig, "crash-run")


def _pre_build(rig: CrashRig) -> None:
    _rmi(rig, "crash/build:1")
    ctx = rig.work / "build"
    ctx.mkdir(exist_ok=True)
    (ctx / "payload").write_bytes(os.urandom(4 * MIB))
    (ctx / "Dockerfile").write_text(
        f"FROM {IMAGE}\nRUN echo one > /one\nCOPY payload /payload\nRUN cat /payload > /two\n"
    )


def _staging_bytes(rig: CrashRig) -> int:
    total = 0
    for top in ("storage/tmp", "tmp/distribution"):
        for dirpath, _dirs, files in os.walk(os.path.join(rig.daemon.data_root, top)):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "pull",
            lambda rig: _rmi(rig, rig.pull_ref),
            lambda rig: ["pull", "-q", rig.pull_ref],
        ),
        Operation(
            "load",
            lambda rig: _rmi(rig, "crash/load:1"),
            lambda rig: ["load", "-q", "-i", str(rig.load_tar)],
        ),
        Operation(
            "import",
            lambda rig: _rmi(rig, "crash/import:1"),
            lambda rig: ["import", str(rig.import_tar), "crash/import:1"],
        ),
        Operation(
            "build",
            _pre_build,
            lambda rig: ["build", "-q", "-t", "crash/build:1", str(rig.work / "build")],
        ),
        Operation("commit", _pre_commit, lambda rig: ["commit", "crash-c", "crash/commit:1"]),
        Operation(
            "run",
            _pre_run,
            lambda rig: [
                "run",
                "-d",
                "--name",
                "crash-run",
                "--network",
                "crash-net",
                "-p",
                "127.0.0.1::80",
                "-v",
                "crash-run-vol:/data",
                IMAGE,
                "sleep",
                "100000",
            ],
        ),
        Operation("rm", _pre_rm, lambda rig: ["rm", "-f", "-v", "crash-rm"]),
        Operation(
            "volume-create",
            lambda rig: _rm_volume(rig, "crash-vol"),
            lambda rig: ["volume", "create", "--label", "crash=1", "crash-vol"],
        ),
        Operation("volume-rm", _pre_volume_rm, lambda rig: ["volume", "rm", "crash-vol-rm"]),
        Operation(
            "network-create",
            lambda rig: _drop_network(rig, "crash-new"),
            lambda rig: ["network", "create", "--label", "crash=1", "crash-new"],
        ),
        Operation(
            "network-rm",
            lambda rig: _ensure_network(rig, "crash-gone"),
            lambda rig: ["network", "rm", "crash-gone"],
        ),
        Operation(
            "network-connect",
            _pre_connect,
            lambda rig: ["network", "connect", "crash-conn", "crash-c"],
        ),
    )
}


# --- the rig -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one iteration did and found."""

    operation: str
    delay: float  # seconds after the CLI started that the daemon was killed
    finished_before_kill: bool
    violations_after_restart: list[str]
    repeat_error: str
    violations_after_repeat: list[str]
    restart_s: float = 0.0  # from the SIGKILL's end to /_ping answering again
    check_s: float = 0.0  # the invariant checks after the restart

    @property
    def ok(self) -> bool:
        return not (
            self.violations_after_restart or self.repeat_error or self.violations_after_repeat
        )


class CrashRig:
    """A daemon plus the inputs of every operation; L{close} removes all of it."""

    def __init__(self, seed: int, load_mib: int = 200, pull_mib: int = 24) -> None:
        self.rng = random.Random(seed)
        self.work = Path(tempfile.mkdtemp(prefix="pyd-crash-"))
        self.pool = _free_pool()
        self.daemon = PydDaemon(str(self.work / "pyd"))
        self.daemon.address_pool = f"base={self.pool},size=24"
        self.daemon.bip = f"{next(iter(self.pool.subnets(new_prefix=24))).network_address + 1}/24"
        self.pools = [self.pool]
        self.seen = Seen()
        self.digests = DigestCache()
        self.durations: dict[str, float] = {}
        self.registry = Registry()
        self.load_mib = load_mib
        self.pull_mib = pull_mib
        self.load_tar = self.work / "load.tar"
        self.import_tar = self.work / "import.tar"
        self.pull_ref = ""

    def start(self) -> CrashRig:
        """Make the inputs, start the registry and the daemon, load the busybox image."""
        n = max(1, self.load_mib // 50)
        _image_tar(str(self.load_tar), [self.load_mib * MIB // n] * n, "crash/load:1", seed=1)
        import tarfile

        with tarfile.open(self.import_tar, "w") as tf:
            import io

            for i in range(4):
                data = random.Random(i).randbytes(4 * MIB)
                ti = tarfile.TarInfo(f"data/{i}.bin")
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
        self.registry.start()
        repo = "crash/pulled"
        n = max(1, self.pull_mib // 8)
        seed_registry(self.registry, repo, "1", [self.pull_mib * MIB // n] * n, seed=2)
        self.pull_ref = f"{self.registry.host}/{repo}:1"
        self.daemon.start()
        bb = self.work / "busybox.tar"
        busybox_image_tar(bb, IMAGE)
        self.docker("load", "-q", "-i", str(bb))
        return self

    def close(self) -> None:
        """Stop everything and remove the daemon's containers, networks and data."""
        try:
            if self.daemon.proc is None or self.daemon.proc.poll() is not None:
                with contextlib.suppress(RuntimeError):
                    self.daemon.start()
            self.daemon.cleanup()
        finally:
            # conmons of containers the daemon lost track of would otherwise outlive the run
            for pid in _conmons(self.daemon.data_root).values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.registry.stop()
            shutil.rmtree(self.work, ignore_errors=True)

    def docker(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI against the rig's daemon."""
        return self.daemon.docker(*args, check=check, timeout=timeout, env={"DOCKER_BUILDKIT": "0"})

    def _spawn(self, argv: list[str]) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "DOCKER_HOST": self.daemon.host,
            "DOCKER_CONFIG": str(self.daemon.base / "docker-config"),
            "DOCKER_BUILDKIT": "0",
        }
        env.pop("DOCKER_CONTEXT", None)
        return subprocess.Popen(
            [DOCKER, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def check(self) -> list[str]:
        """The invariants, now."""
        return check_invariants(self.daemon, self.pools, self.seen, self.digests)

    def calibrate(self, op: Operation) -> float:
        """Run C{op} once uninterrupted (it must succeed and leave every invariant holding);
        its duration bounds the random kill delays."""
        op.pre(self)
        t0 = time.monotonic()
        self.docker(*op.argv(self))
        self.durations[op.name] = time.monotonic() - t0
        bad = self.check()
        if bad:
            raise AssertionError(f"{op.name} without a crash: " + "; ".join(bad))
        return self.durations[op.name]

    def iteration(self, op: Operation, delay: float | None = None) -> Outcome:
        """One kill of C{op}: at C{delay} seconds (default: a seeded random point within its
        calibrated duration, or when its trigger fires), then restart, check, repeat, check."""
        if op.name not in self.durations and op.trigger is None and delay is None:
            self.calibrate(op)
        op.pre(self)
        if delay is None and op.trigger is None:
            delay = self.rng.uniform(0, self.durations[op.name])
        proc = self._spawn(op.argv(self))
        t0 = time.monotonic()
        finished = False
        while True:
            if proc.poll() is not None:
                finished = True
                break
            elapsed = time.monotonic() - t0
            if delay is not None and elapsed >= delay:
                break
            if op.trigger is not None and op.trigger(self):
                break
            if delay is None and elapsed > 300:
                raise AssertionError(f"{op.name}: its kill trigger never fired")
            time.sleep(0.005)
        killed_at = time.monotonic() - t0
        early_error = ""
        if finished and proc.returncode != 0:
            # it ended before the kill: it had to succeed like any uninterrupted operation
            early_error = f"exited {proc.returncode} before the kill: {proc.stderr.read() if proc.stderr else ''}"
        self.daemon.kill9()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        t1 = time.monotonic()
        self.daemon.start(timeout=120)
        t2 = time.monotonic()
        after_restart = self.check()
        t3 = time.monotonic()
        if op.after_restart is not None:
            after_restart += op.after_restart(self)
        repeat_error = early_error
        try:
            op.pre(self)
            t4 = time.monotonic()
            self.docker(*op.argv(self))
            # the next kill's window follows the machine's load (a window measured once on a
            # busy machine put most kills after the operation had ended)
            self.durations[op.name] = time.monotonic() - t4
        except AssertionError as e:
            repeat_error = str(e)[:2000]
        after_repeat = self.check()
        return Outcome(
            op.name,
            killed_at,
            finished,
            after_restart,
            repeat_error,
            after_repeat,
            restart_s=t2 - t1,
            check_s=t3 - t2,
        )


def staging_over(rig: CrashRig, nbytes: int) -> bool:
    """A kill trigger: the daemon's staging holds more than C{nbytes} (mid-extraction)."""
    return _staging_bytes(rig) > nbytes
