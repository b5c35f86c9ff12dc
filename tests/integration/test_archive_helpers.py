"""The archive helpers open nothing of the container but the files they archive (issue 13).

Each helper runs under `strace` on a root that holds everything glibc and Python would load by
path (an nsswitch.conf naming a module, the module, /etc/localtime, a Python tree at the host
interpreter's paths, ld.so.cache) and files whose names and owners exercise every tar path
(owned by uids named in the root's /etc/passwd, long and non-UTF-8 names, hard links, a FIFO, a
device). After the helper enters the root, every file it opens by an absolute path or from its
working directory must be `.`: the tree itself is opened relative to directory descriptors.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from pyd.drivers.streams import archive, rootview

pytestmark = pytest.mark.integration

# what the audit must never see opened after the chroot
_BAITS = ("nsswitch", "libnss", "localtime", "ld.so", ".so", ".py", "passwd", "group", "gconv")


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "nsswitch.conf").write_text("passwd: evil\ngroup: evil\n")
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\napp:x:1000:\n")
    (etc / "localtime").write_text("not a tzfile\n")
    (etc / "ld.so.cache").write_text("bait\n")
    for d in ("lib", "lib64", "usr/lib", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"):
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d / "libnss_evil.so.2").write_text("bait\n")
    # the host interpreter's own tree, inside the root: a lazy import would look here
    stdlib = root / Path(os.__file__).parent.relative_to("/")
    (stdlib / "lib-dynload").mkdir(parents=True)
    (stdlib / "xml").mkdir()
    (stdlib / "xml" / "__init__.py").write_text("raise SystemExit('imported from the root')\n")
    data = root / "data"
    data.mkdir()
    (data / "owned").write_text("app's\n")
    os.chown(data / "owned", 1000, 1000)
    (data / ("long-" + "x" * 150)).write_text("long\n")
    (data / "hard").write_bytes(b"same")
    os.link(data / "hard", data / "hard2")
    os.mkfifo(data / "fifo")
    os.mknod(data / "null", 0o600 | 0o020000, os.makedev(1, 3))
    os.symlink("/etc/passwd", data / "link")
    with open(os.path.join(os.fsencode(data), b"latin-\xe9"), "w") as f:
        f.write("bytes\n")
    return root


def _audit(
    argv: list[str], log: Path, **kw: object
) -> tuple[subprocess.CompletedProcess[bytes], list[str]]:
    """Run C{argv} under strace; the paths it opened by name after its chroot (or setns)."""
    kw.setdefault("stdout", subprocess.PIPE)
    r = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=openat,open,chroot,setns", "-o", str(log), *argv],
        stderr=subprocess.PIPE,
        timeout=120,
        **kw,  # type: ignore[call-overload]  # **kw holds subprocess.run's keyword arguments of mixed types
    )
    opened: list[str] = []
    entered = False
    for line in log.read_text(errors="replace").splitlines():
        if re.search(r"\b(chroot|setns)\(", line) and "= 0" in line:
            entered = True
            continue
        m = re.search(r"\bopen(?:at)?\((AT_FDCWD, )?\"([^\"]*)\"", line)
        if entered and m and (m.group(1) or "open(" in line):
            opened.append(m.group(2))
    return r, opened


def _check(opened: list[str], *, strict: bool = True) -> None:
    """No bait opened; when C{strict}, nothing opened by name at all but C{.}."""
    bad = [p for p in opened if p != "." and any(b in p for b in _BAITS)]
    assert bad == [], f"opened inside the root by name: {bad}"
    if strict:
        assert [p for p in opened if p != "."] == []


def _check_tar(data: bytes, prefix: str) -> None:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert all(m.uname == "" and m.gname == "" for m in members.values())
    assert (members[prefix + "owned"].uid, members[prefix + "owned"].gid) == (1000, 1000)
    assert members[prefix + "hard2"].islnk() or members[prefix + "hard"].islnk()
    assert members[prefix + "fifo"].isfifo() and members[prefix + "null"].ischr()
    assert members[prefix + "link"].linkname == "/etc/passwd"
    assert prefix + "long-" + "x" * 150 in members
    assert any(n.startswith(prefix + "latin-") for n in members)


class ArchiveHelperAuditTests:
    """strace shows what the helpers open once they are inside the root."""

    def test_export_helper(self, tmp_path: Path) -> None:
        """The export helper (tarstream) opens only `.` by name; everything else through
        descriptors; the tar is complete, with numeric owners."""
        root = _root(tmp_path)
        out = tmp_path / "out.tar"
        with out.open("wb") as f:
            r, opened = _audit(
                archive.tar_helper_argv(str(root), "/", ".", "/"), tmp_path / "log", stdout=f
            )
        assert r.returncode == 0, r.stderr.decode()
        _check(opened)
        _check_tar(out.read_bytes(), "data/")

    def test_cp_helper(self, tmp_path: Path) -> None:
        """The cp helper's stat and get: no bait opened; the tar of /data is complete."""
        root = _root(tmp_path)
        spec = {"mode": "mounts", "root": str(root), "mounts": [], "checks": {}}
        out = tmp_path / "out.tar"
        with out.open("wb") as f:
            argv = ["bash", "-c", f'exec "$0" "$@" 3>&{f.fileno()}']
            argv += rootview.helper_argv(spec, "get", "/data")
            r, opened = _audit(argv, tmp_path / "log", pass_fds=(f.fileno(),))
        assert r.returncode == 0, r.stderr.decode()
        assert json.loads(r.stdout)["stat"]["name"] == "data"
        # the cp helper resolves the requested path by name inside the root (the chroot
        # confines it): those opens are the path and its parents, nothing else
        _check([p for p in opened if not p.startswith("/data") and p not in ("/", ".")])
        _check_tar(out.read_bytes(), "data/")

    def test_cp_in_helper_without_sys_admin(self, tmp_path: Path) -> None:
        """cp in extracts with numeric owners and without CAP_SYS_ADMIN: a trusted.* xattr it
        may not set is skipped (as dockerd), the rest lands; no bait is opened."""
        root = _root(tmp_path)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            info = tarfile.TarInfo("up")
            info.size = 3
            info.uid, info.gid, info.uname, info.gname = 1000, 1000, "root", "root"
            info.pax_headers = {"SCHILY.xattr.trusted.pyd": "x"}
            tf.addfile(info, io.BytesIO(b"up\n"))
        src = tmp_path / "in.tar"
        src.write_bytes(buf.getvalue())
        spec = {"mode": "mounts", "root": str(root), "mounts": [], "checks": {}}
        with src.open("rb") as f:
            r, opened = _audit(
                rootview.helper_argv(spec, "put", "/data"), tmp_path / "log", stdin=f
            )
        assert r.returncode == 0, r.stderr.decode()
        assert json.loads(r.stdout) == {"ok": True}
        st = os.lstat(root / "data" / "up")
        assert (st.st_uid, st.st_gid) == (1000, 1000)  # numbers, not the names "root"
        assert b"trusted.pyd" not in b"".join(
            n.encode() for n in os.listxattr(root / "data" / "up")
        )
        # extraction writes its entries by name, inside the chroot of the destination
        _check(opened, strict=False)
        assert "/up" in opened
