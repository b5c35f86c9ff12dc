"""Attacks on the classic builder through a context, a Dockerfile and a base image (issue 13:
escapes 2, 3, 4, 10, the build part of 5; issue 12: escape 6).

Each test performs the attack against a real pyd, as root, with the real docker CLI or raw API
requests over the daemon's socket (for context tars the CLI cannot produce), and then checks:
the host canary directory the attack aims at is unchanged (every entry's mode, owner, mtime and
bytes), the exact host paths it targets were not created, no host secret reached the build's
output or the built image, the daemon answered no 5xx and logged no traceback.

The links are the issue's: C{a -> missing/../evil} with C{evil -> <host dir>} (a missing component
first), the plain absolute C{evil -> <host dir>}, and a relative one climbing with C{../}.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import stat
import tarfile
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.helpers.daemon import PydDaemon, unix_request
from tests.helpers.images import DEFAULT_TAG, File, load_busybox

pytestmark = pytest.mark.e2e

SECRET = "HOST-SECRET-" + secrets.token_hex(8)


def _name() -> str:
    return "pyd-t-" + secrets.token_hex(5)


def snapshot(top: Path) -> dict[str, tuple[int, int, int, int, bytes]]:
    """Every entry under C{top} (and C{top}): mode, owner, mtime and bytes or link target."""
    out = {}
    for d, dirs, files in os.walk(top):
        for n in [".", *dirs, *files] if d == str(top) else [*dirs, *files]:
            p = os.path.join(d, n) if n != "." else d
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                data = os.readlink(p).encode()
            elif stat.S_ISREG(st.st_mode):
                data = Path(p).read_bytes()
            else:
                data = b""
            out[os.path.relpath(p, top)] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, data)
    return out


class Host:
    """The host canaries of one test: a directory holding a secret file, a subdirectory
    (mode 0700), account files with a host-only user, and a planted outside Dockerfile."""

    def __init__(self, top: Path) -> None:
        self.dir = top
        self.dir.mkdir()
        (top / "secret").write_text(SECRET + " first line\n")
        (top / "sub").mkdir(mode=0o700)
        (top / "sub" / "keep").write_text("keep\n")
        (top / "passwd").write_text("hostonly:x:4242:4343::/:/bin/sh\n")
        (top / "group").write_text("hostgrp:x:4545:\n")
        (top / ".dockerfile.0123456789abcdef").write_text(f"FROM {DEFAULT_TAG}\n")
        (top / "ignore").write_text("Dockerfile\n")
        os.chmod(top / "sub", 0o700)
        self.before = snapshot(top)

    def tar_links(self) -> list[tuple[str, str, object]]:
        """The issue's links as context tar entries."""
        return [("a", "l", "missing/../evil"), ("evil", "l", str(self.dir)), ("rel", "l", self.rel)]

    @property
    def rel(self) -> str:
        """A relative link to the canary directory that climbs out with C{..}."""
        return "../" * 16 + str(self.dir).lstrip("/")

    def assert_untouched(self, *targets: Path) -> None:
        assert snapshot(self.dir) == self.before, "a host file was written, chmodded or deleted"
        for t in targets:
            assert not os.path.lexists(t), f"the attack created the host file {t}"


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path / "host")


@pytest.fixture
def clean_log(pyd: PydDaemon) -> Iterator[None]:
    """The test's part of the daemon log holds no traceback (nothing answered 500)."""
    start = len(pyd.log())
    yield
    tail = pyd.log()[start:]
    assert "Traceback" not in tail, tail[-3000:]


def links_in(d: dict[str, object], host: Host, prefix: str = "") -> None:
    d[prefix + "a"] = "->missing/../evil"
    d[prefix + "evil"] = "->" + str(host.dir)
    d[prefix + "rel"] = "->" + host.rel


def context_dir(base: Path, files: Mapping[str, object]) -> Path:
    """A context directory: str/bytes are files, C{"->x"} is a symlink to C{x}."""
    ctx = base / ("ctx-" + secrets.token_hex(4))
    ctx.mkdir()
    for name, content in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.startswith("->"):
            os.symlink(content[2:], p)
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(str(content))
    return ctx


def tar_bytes(entries: list[tuple[str, str, object]]) -> bytes:
    """A tar of C{(name, kind, value)}: kind C{f} (value: bytes, optional mode in a tuple),
    C{d} (value: mode), C{l} (symlink to value), C{h} (hardlink to value)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, value in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_700_000_000
            if kind == "f":
                data, mode = value if isinstance(value, tuple) else (value, 0o644)
                ti.size, ti.mode = len(data), mode
                tf.addfile(ti, io.BytesIO(data))
                continue
            if kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, int(value)  # type: ignore[call-overload]  # typeshed types TarInfo.type as bytes; tarfile's constants are bytes too
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, str(value)
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, str(value)
            tf.addfile(ti)
    return buf.getvalue()


def api_build(pyd: PydDaemon, context: bytes, **query: str) -> tuple[int, str]:
    """POST /build (classic builder) with a raw context tar; returns the status and the body
    (the JSON progress stream, or the error)."""
    params = {"rm": "1", "forcerm": "1", **query}
    status, _, body = unix_request(
        pyd.sock,
        "POST",
        "/v1.41/build?" + urllib.parse.urlencode(params),
        context,
        {"Content-Type": "application/x-tar"},
        timeout=300,
    )
    text = body.decode("utf-8", "replace")
    assert status < 500, text
    assert "Errno" not in text and "Traceback" not in text, text
    return status, text


def cli_build(pyd: PydDaemon, ctx: Path, *args: str) -> tuple[int, str]:
    r = pyd.docker("build", "--force-rm", *args, str(ctx), check=False, timeout=300)
    out = r.stdout + r.stderr
    assert "Errno" not in out and "Traceback" not in out, out
    return r.returncode, out


def image_layers(pyd: PydDaemon, ref: str) -> list[dict[str, tuple[tarfile.TarInfo, bytes]]]:
    """Each layer of the image (bottom first) as name -> (header, bytes), from `docker save`."""
    out = pyd.base / ("save-" + secrets.token_hex(4) + ".tar")
    pyd.docker("save", "-o", str(out), ref, timeout=300)
    try:
        with tarfile.open(out) as tf:
            f = tf.extractfile("manifest.json")
            assert f is not None
            manifest = json.loads(f.read())
            layers = []
            for path in manifest[0]["Layers"]:
                lf = tf.extractfile(path)
                assert lf is not None
                entries = {}
                with tarfile.open(fileobj=io.BytesIO(lf.read())) as layer:
                    for m in layer.getmembers():
                        data = b""
                        if m.isfile():
                            mf = layer.extractfile(m)
                            assert mf is not None
                            data = mf.read()
                        entries[m.name.lstrip("./")] = (m, data)
                layers.append(entries)
            return layers
    finally:
        out.unlink()


def top_entry(pyd: PydDaemon, ref: str, path: str) -> tuple[tarfile.TarInfo, bytes] | None:
    """The entry C{path} in the image's top layer."""
    return image_layers(pyd, ref)[-1].get(path.lstrip("/"))


def assert_no_secret(pyd: PydDaemon, ref: str) -> None:
    for layer in image_layers(pyd, ref):
        for name, (_m, data) in layer.items():
            assert SECRET.encode() not in data, f"the host secret is in the image at {name}"


def image_exists(pyd: PydDaemon, ref: str) -> bool:
    return pyd.docker("image", "inspect", ref, check=False).returncode == 0


# --- escape 2: heredoc names ------------------------------------------------------------------


class HeredocNameTests:
    """A heredoc name is a file name: never a host path, absolute or climbing."""

    @pytest.mark.parametrize("cmd", ["COPY", "ADD"])
    def test_heredoc_name_paths(
        self, pyd: PydDaemon, host: Host, tmp_path: Path, cmd: str, clean_log: None
    ) -> None:
        """`COPY <</host/x /dst`, `<<../../…/host/x` and quoted forms: refused before the build,
        no host file created."""
        absolute = host.dir / "heredoc-abs"
        climbing = host.dir / "heredoc-rel"
        for name in (str(absolute), "../" * 16 + str(climbing).lstrip("/")):
            for quoted in (name, f'"{name}"'):
                dockerfile = f"FROM {DEFAULT_TAG}\n{cmd} <<{quoted} /dst/\npwned\n{name}\n"
                ctx = context_dir(tmp_path, {"Dockerfile": dockerfile})
                code, out = cli_build(pyd, ctx, "-t", _name())
                assert code != 0 and "not a valid file name" in out, out
                status, body = api_build(pyd, tar_bytes([("Dockerfile", "f", dockerfile.encode())]))
                assert status == 400 and "not a valid file name" in body, body
        host.assert_untouched(absolute, climbing)

    def test_heredoc_name_in_base_image_trigger(
        self, pyd: PydDaemon, host: Host, tmp_path: Path, clean_log: None
    ) -> None:
        """A base image's ONBUILD trigger `COPY <</host/x /dst/` (the image config is as
        untrusted as its files): the child build fails, no host file is created."""
        target = host.dir / "heredoc-trigger"
        base = f"{_name()}/trigger:1"
        trigger = f"COPY <<{target} /dst/\npwned\n{target}"
        load_busybox(pyd, tag=base, config={"OnBuild": [trigger]})
        ctx = context_dir(tmp_path, {"Dockerfile": f"FROM {base}\n"})
        code, out = cli_build(pyd, ctx, "-t", _name())
        assert code != 0 and "not a valid file name" in out, out
        host.assert_untouched(target)

    def test_plain_heredoc_still_copies(self, pyd: PydDaemon, tmp_path: Path) -> None:
        """A plain name works and lands under that name."""
        tag = _name()
        dockerfile = f"FROM {DEFAULT_TAG}\nCOPY <<hello.txt /dst/\nhi there\nhello.txt\n"
        code, out = cli_build(pyd, context_dir(tmp_path, {"Dockerfile": dockerfile}), "-t", tag)
        assert code == 0, out
        entry = top_entry(pyd, tag, "dst/hello.txt")
        assert entry is not None and entry[1] == b"hi there\n"


# --- escape 3: resolution walking out of the root ------------------------------------------


class ContextSourceTests:
    """COPY/ADD sources through links in the context read nothing of the host."""

    @pytest.mark.parametrize(
        "src", ["a/secret", "evil/secret", "rel/secret", "a", "evil/", "a/s*", "rel/*"]
    )
    def test_copy_through_context_links(
        self, pyd: PydDaemon, host: Host, tmp_path: Path, src: str, clean_log: None
    ) -> None:
        """`COPY <src> /x/` with the issue's links in the context: no host byte in the image."""
        files: dict[str, object] = {"Dockerfile": f"FROM {DEFAULT_TAG}\nCOPY {src} /x/\n"}
        links_in(files, host)
        tag = _name()
        code, out = cli_build(pyd, context_dir(tmp_path, files), "-t", tag)
        assert SECRET not in out
        if code == 0:
            assert_no_secret(pyd, tag)
        host.assert_untouched()

    def test_dockerfile_through_link(self, pyd: PydDaemon, host: Host, clean_log: None) -> None:
        """`dockerfile=a/secret` (and evil/, rel/): not found; the host file's first line is in
        no error."""
        links = host.tar_links()
        for name in ("a/secret", "evil/secret", "rel/secret"):
            status, body = api_build(pyd, tar_bytes(links), dockerfile=name)
            assert status == 400, body
            assert SECRET not in body
            assert json.loads(body)["message"] == f"Cannot locate specified Dockerfile: {name}"
        host.assert_untouched()


class ContextTarEntryTests:
    """Context tar entries never write, chmod or delete through a link."""

    def test_entries_through_links(self, pyd: PydDaemon, host: Host, clean_log: None) -> None:
        """Files (setuid), a 0777 directory, a file over a host directory, a hardlink to a host
        file: each under C{a/}, C{evil/} and C{rel/}; the host directory is unchanged."""
        links = host.tar_links()
        dockerfile = ("Dockerfile", "f", f"FROM {DEFAULT_TAG}\nCOPY . /ctx/\n".encode())
        for top in ("a", "evil", "rel"):
            attacks: list[list[tuple[str, str, object]]] = [
                [(f"{top}/pwned", "f", (b"x", 0o4755))],
                [(f"{top}/sub", "d", 0o777)],
                [(f"{top}/sub", "f", b"file over a directory")],
                [(f"{top}/secret", "f", b"overwritten")],
                [("hl", "h", f"{top}/secret")],
            ]
            for attack in attacks:
                _status, body = api_build(pyd, tar_bytes([*links, *attack, dockerfile]))
                assert SECRET not in body
                host.assert_untouched(host.dir / "pwned")


class BaseImageSourceTests:
    """`COPY --from=<image>` through links the image holds reads nothing of the host."""

    @pytest.mark.parametrize("src", ["/app/a/secret", "/app/evil/secret", "/app/rel/secret",
                                     "/app/a", "/app/top"])  # fmt: skip
    def test_copy_from_image_links(
        self, pyd: PydDaemon, host: Host, tmp_path: Path, src: str, clean_log: None
    ) -> None:
        base = f"{_name()}/links:1"
        load_busybox(
            pyd,
            tag=base,
            extra_files={
                "/app/a": File(kind="symlink", target="missing/../evil"),
                "/app/evil": File(kind="symlink", target=str(host.dir)),
                "/app/rel": File(kind="symlink", target=host.rel),
                "/app/top": File(kind="symlink", target=str(host.dir / "secret")),
            },
        )
        tag = _name()
        dockerfile = f"FROM {DEFAULT_TAG}\nCOPY --from={base} {src} /x\n"
        code, out = cli_build(pyd, context_dir(tmp_path, {"Dockerfile": dockerfile}), "-t", tag)
        assert SECRET not in out
        if code == 0:
            assert_no_secret(pyd, tag)
        host.assert_untouched()


class OwnerLookupTests:
    """`--chown`/`USER` names come from the image's own files, never the host's."""

    @pytest.mark.parametrize(
        "how", ["missing-component", "absolute", "climbing", "magic", "host-etc"]
    )
    def test_etc_link_to_host(
        self, pyd: PydDaemon, host: Host, tmp_path: Path, how: str, clean_log: None
    ) -> None:
        """A base image whose /etc leads to a host directory holding `hostonly` (4242:4343):
        `COPY --chown=hostonly` fails as an unknown user, `USER hostonly` + WORKDIR owns 0:0."""
        target = {
            "missing-component": "missing/../evil",
            "absolute": str(host.dir),
            "climbing": host.rel,
            "magic": "/proc/1/root" + str(host.dir),
            "host-etc": "missing/../hostetc",  # /hostetc -> /etc: the host's own accounts
        }[how]
        # With the host's /etc, any name found (root) came from the host: the image has none.
        user = "root:root" if how == "host-etc" else "hostonly:hostgrp"
        base = f"{_name()}/etc:1"
        load_busybox(
            pyd,
            tag=base,
            extra_files={"/etc": None},
            extra_layers=[
                {
                    "/etc": File(kind="symlink", target=target),
                    "/evil": File(kind="symlink", target=str(host.dir)),
                    "/hostetc": File(kind="symlink", target="/etc"),
                }
            ],
        )
        files = {"Dockerfile": f"FROM {base}\nCOPY --chown={user} f /f\n", "f": "x"}
        code, out = cli_build(pyd, context_dir(tmp_path, files), "-t", _name())
        name = user.partition(":")[0]
        assert code != 0 and f"no such user: {name}" in out, out
        tag = _name()
        files = {"Dockerfile": f"FROM {base}\nUSER {name}\nWORKDIR /w\n"}
        code, out = cli_build(pyd, context_dir(tmp_path, files), "-t", tag)
        assert code == 0, out
        entry = top_entry(pyd, tag, "w")
        assert entry is not None and (entry[0].uid, entry[0].gid) == (0, 0)
        host.assert_untouched()


# --- escape 4 / issue 12 escape 6: destinations through the image's links ----------------------


class DestinationLinkTests:
    """COPY into a tree where the image holds links to host directories writes inside the image."""

    @pytest.mark.parametrize("via", ["run-absolute", "run-missing-component", "run-climbing"])
    def test_copy_directory_through_run_link(
        self, pyd: PydDaemon, host: Host, tmp_path: Path, via: str, clean_log: None
    ) -> None:
        """`RUN ln -s <host dir> /evil`, then `COPY payload/ /` with payload/evil/{x,secret}."""
        link = {
            "run-absolute": f"ln -s {host.dir} /evil",
            "run-missing-component": f"ln -s missing/../real /evil && ln -s {host.dir} /real",
            "run-climbing": f"ln -s {host.rel} /evil",
        }[via]
        files = {
            "Dockerfile": f"FROM {DEFAULT_TAG}\nRUN {link}\nCOPY payload/ /\n",
            "payload/evil/x": "pwned",
            "payload/evil/secret": "overwritten",
            "payload/evil/sub/new": "pwned",
        }
        code, out = cli_build(pyd, context_dir(tmp_path, files), "-t", _name())
        assert code == 0, out
        host.assert_untouched(host.dir / "x", host.dir / "sub" / "new")

    def test_innocent_copy_into_base_image_link(
        self, pyd: PydDaemon, host: Host, tmp_path: Path, clean_log: None
    ) -> None:
        """A base image whose /app is a link to a host directory (and /app2 via a missing
        component): `COPY . /app/`, `COPY x /app2/secret`, `WORKDIR /app/sub/w`."""
        base = f"{_name()}/app:1"
        load_busybox(
            pyd,
            tag=base,
            extra_files={
                "/app": File(kind="symlink", target=str(host.dir)),
                "/app2": File(kind="symlink", target="missing/../evil"),
                "/evil": File(kind="symlink", target=str(host.dir)),
            },
        )
        files = {
            "Dockerfile": (
                f"FROM {base}\nCOPY . /app/\nCOPY x /app2/secret\nCOPY --chmod=777 x /app/sub/\n"
                "WORKDIR /app/sub/w\n"
            ),
            "x": "pwned",
        }
        code, out = cli_build(pyd, context_dir(tmp_path, files), "-t", _name())
        assert code == 0, out
        host.assert_untouched(host.dir / "x", host.dir / "Dockerfile", host.dir / "sub" / "w")

    def test_link_loops_are_plain_errors(
        self, pyd: PydDaemon, host: Host, tmp_path: Path, clean_log: None
    ) -> None:
        """A base image with a link loop: WORKDIR, COPY and --chown through it fail with a
        plain message (no traceback, no errno text)."""
        base = f"{_name()}/loop:1"
        load_busybox(pyd, tag=base, extra_files={"/loop": File(kind="symlink", target="/loop")})
        for step in ("WORKDIR /loop/x", "COPY f /loop/", "COPY --from={base} /loop/f /g"):
            files = {"Dockerfile": f"FROM {base}\n" + step.format(base=base) + "\n", "f": "x"}
            code, out = cli_build(pyd, context_dir(tmp_path, files), "-t", _name())
            assert code != 0, out
        host.assert_untouched()

    def test_add_tar_through_links(
        self, pyd: PydDaemon, host: Host, tmp_path: Path, clean_log: None
    ) -> None:
        """ADD of a local tar whose members go through the image's links and the archive's own:
        setuid files, a 0777 directory, a file over a host directory, a hardlink to a host file."""
        archive = tar_bytes(
            [
                ("l1", "l", "missing/../l2"),
                ("l2", "l", str(host.dir)),
                ("l1/pwned", "f", (b"x", 0o6755)),
                ("l2/sub", "d", 0o777),
                ("evil/secret", "f", b"overwritten"),
                ("evil/sub", "f", b"file over a directory"),
                ("rel/pwned2", "f", (b"x", 0o4755)),
                ("hl", "h", "evil/secret"),
            ]
        )
        files = {
            "Dockerfile": (
                f"FROM {DEFAULT_TAG}\nRUN ln -s {host.dir} /evil && ln -s {host.rel} /rel\n"
                "ADD t.tar /\n"
            ),
            "t.tar": archive,
        }
        _code, out = cli_build(pyd, context_dir(tmp_path, files), "-t", _name())
        assert SECRET not in out
        host.assert_untouched(host.dir / "pwned", host.dir / "pwned2")


# --- escape 5 (build part): device nodes ---------------------------------------------------------


def _device_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("disk")
        ti.type, ti.mode, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 0o666, 1, 3
        tf.addfile(ti)
        ti = tarfile.TarInfo("dir/zero")
        ti.type, ti.mode, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 0o666, 1, 5
        tf.addfile(ti)
    return buf.getvalue()


class DeviceTests:
    """Nothing in a build reads a device file: nodes are copied as nodes."""

    def test_copy_from_device_nodes(self, pyd: PydDaemon, tmp_path: Path, clean_log: None) -> None:
        """`COPY --from=img /disk /leak` (char 1:3) and a directory holding /dev/zero's node
        (1:5: reading it would never end) give device nodes in the layer, not their content."""
        base = f"{_name()}/dev:1"
        load_busybox(pyd, tag=base, raw_layers=[_device_layer()])
        tag = _name()
        dockerfile = (
            f"FROM {DEFAULT_TAG}\nCOPY --from={base} /disk /leak\nCOPY --from={base} /dir /d\n"
        )
        code, out = cli_build(pyd, context_dir(tmp_path, {"Dockerfile": dockerfile}), "-t", tag)
        assert code == 0, out
        layers = image_layers(pyd, tag)
        leak, _ = layers[-2]["leak"]
        zero, _ = layers[-1]["d/zero"]
        assert leak.ischr() and (leak.devmajor, leak.devminor) == (1, 3)
        assert zero.ischr() and (zero.devmajor, zero.devminor) == (1, 5)

    def test_block_device_from_a_stage(
        self, pyd: PydDaemon, tmp_path: Path, clean_log: None
    ) -> None:
        """A stage that makes a block node (loop0) and a later `COPY --from` of it: the build
        fails or copies the node; it never copies the device's content."""
        tag = _name()
        dockerfile = (
            f"FROM {DEFAULT_TAG} AS s\nRUN mknod /disk b 7 0\n"
            f"FROM {DEFAULT_TAG}\nCOPY --from=s /disk /leak\n"
        )
        code, _out = cli_build(pyd, context_dir(tmp_path, {"Dockerfile": dockerfile}), "-t", tag)
        if code == 0:
            entry = top_entry(pyd, tag, "leak")
            assert entry is not None and entry[0].isblk(), "the device's content was copied"


# --- escape 10: build inputs read on the host ----------------------------------------------------


class BuildInputTests:
    """`.dockerignore` and the outside-Dockerfile removal stay inside the context."""

    def test_dockerignore_link_to_host(self, pyd: PydDaemon, host: Host, clean_log: None) -> None:
        """A .dockerignore linking to a host file (absolute, via a missing component,
        climbing) is not applied: the Dockerfile (excluded by the host file, so removed from
        the context were it applied) is still copied."""
        for target in (str(host.dir / "ignore"), "a/ignore", host.rel + "/ignore"):
            tag = _name()
            ctx = tar_bytes(
                [
                    ("a", "l", "missing/../evil"),
                    ("evil", "l", str(host.dir)),
                    (".dockerignore", "l", target),
                    ("keepme", "f", b"kept"),
                    ("Dockerfile", "f", f"FROM {DEFAULT_TAG}\nCOPY Dockerfile /k\n".encode()),
                ]
            )
            status, body = api_build(pyd, ctx, t=tag)
            assert status == 200 and "errorDetail" not in body, body
            assert top_entry(pyd, tag, "k") is not None
        host.assert_untouched()

    def test_outside_dockerfile_not_deleted(
        self, pyd: PydDaemon, host: Host, clean_log: None
    ) -> None:
        """`dockerfile=a/.dockerfile.<hex>` with C{a} leading to a host directory holding that
        file (a valid Dockerfile): the host file stays (and is not read)."""
        name = ".dockerfile.0123456789abcdef"
        for top, target in (("a", "missing/../evil"), ("b", str(host.dir)), ("c", host.rel)):
            ctx = tar_bytes([(top, "l", target), ("evil", "l", str(host.dir))])
            status, body = api_build(pyd, ctx, dockerfile=f"{top}/{name}")
            assert status == 400, body
        host.assert_untouched()
