"""Issue 12 escapes 4, 5 and 9 as the issue ran them: with an operator certificate over mutual
TLS (the daemon of L{tests.e2e.test_attack_operator}'s arena, without its admin targets).

The same attacks as L{tests.e2e.test_attack_volumes} (which runs them on the local socket, with
more variants): a volume subpath that is a link to /, a subpath flipped while the victim starts,
and a tmpfs volume whose device is a mount(8) option. After each test the host canary is
unchanged, no operator container runs in a host namespace, and no answer was a 5xx.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_attack_operator import LABEL, Arena
from tests.e2e.test_remote_operator import running
from tests.helpers.images import DEFAULT_TAG

pytestmark = pytest.mark.e2e

RACE_STARTS = 25


@pytest.fixture(scope="module")
def arena() -> Iterator[Arena]:
    with running(Arena, "pyd-t-attack-vol-") as a:
        yield a


@pytest.fixture
def h(arena: Arena) -> Iterator[Arena]:
    before = arena.canary_digest()
    try:
        yield arena
        assert arena.canary_digest() == before
        assert arena.running_in_host_namespace() == []
    finally:
        arena.remove_operator_containers()
        for vol in arena.ok("admin", "volume", "ls", "-q").split():
            arena.cli("admin", "volume", "rm", "-f", vol)


def _name() -> str:
    return "pyd-t-" + uuid.uuid4().hex[:10]


def _subpath_body(vol: str, sub: str, cmd: list[str]) -> dict:
    return {
        "Image": DEFAULT_TAG,
        "Cmd": cmd,
        "Labels": {LABEL: "1"},
        "HostConfig": {
            "Mounts": [
                {"Type": "volume", "Source": vol, "Target": "/x", "VolumeOptions": {"Subpath": sub}}
            ]
        },
    }


def _host_root() -> str:
    st = os.stat("/")
    return f"{st.st_dev}:{st.st_ino}"


def _start_while_flipping(h: Arena, victim: str) -> None:
    """Start C{victim} (which prints C{seen <dev:ino of its mount>}) many times while another
    container flips its source; it never sees the host's root or the canary."""
    started = 0
    for _ in range(RACE_STARTS):
        status, out = h.http("POST", f"/containers/{victim}/start")
        assert status in (204, 400, 404), out
        if status == 204:
            started += 1
            h.http("POST", f"/containers/{victim}/wait")
    logs = h.ok("operator", "logs", victim)
    seen = re.findall(r"seen (\d+:\d+)", logs)
    assert _host_root() not in seen
    assert "ESCAPED" not in logs
    assert len(seen) == started


class OperatorVolumeEscapeTests:
    def test_subpath_link_to_root(self, h: Arena) -> None:
        """Escape 4: `sub -> /` in the operator's own volume; cp out and in, and start, refused."""
        vol, c = _name(), _name()
        h.ok("operator", "volume", "create", vol)
        h.ok("operator", "run", "--rm", "--label", f"{LABEL}=1", "-v", f"{vol}:/v",
             DEFAULT_TAG, "ln", "-s", "/", "/v/sub")  # fmt: skip
        status, out = h.http(
            "POST", f"/containers/create?name={c}", _subpath_body(vol, "sub", ["true"])
        )
        assert status == 201, out
        secret = f"/x{h.canary_dir}/secret"
        err = h.op_fails("cp", f"{c}:{secret}", "-")
        assert "escapes the base directory" in err
        src = h.base / f"planted-{uuid.uuid4().hex[:6]}"
        src.write_text("operator\n")
        try:
            h.op_fails("cp", str(src), f"{c}:/x{h.canary_dir}/")
        finally:
            src.unlink()
        status, _ = h.http("HEAD", f"/containers/{c}/archive?path={secret}")
        assert status == 400
        status, out = h.http("POST", f"/containers/{c}/start")
        assert status == 400 and b"escapes the base directory" in out

    def test_subpath_flipped_during_start(self, h: Arena) -> None:
        """Escape 9: the operator's second container flips `sub` between a directory and a link
        to /; the victim, started many times, never sees the host's root or the canary."""
        vol, racer, victim = _name(), _name(), _name()
        h.ok("operator", "volume", "create", vol)
        h.ok(
            "operator", "run", "-d", "--label", f"{LABEL}=1", "--name", racer, "-v", f"{vol}:/v",
            DEFAULT_TAG, "sh", "-c",
            "while true; do mkdir /v/sub; usleep 150000; rmdir /v/sub; ln -s / /v/sub; "
            "rm -f /v/sub; done 2>/dev/null",
        )  # fmt: skip
        probe = f'echo "seen $(stat -c %d:%i /x)"; [ -e /x{h.canary_dir} ] && echo ESCAPED; true'
        status, out = h.http(
            "POST",
            f"/containers/create?name={victim}",
            _subpath_body(vol, "sub", ["sh", "-c", probe]),
        )
        assert status == 201, out
        _start_while_flipping(h, victim)

    def test_tmpfs_device_is_not_a_mount_option(self, h: Arena) -> None:
        """Escape 5: `--opt device=-T<fstab the operator wrote>` (and option look-alikes in `o`)
        is refused (the engine's 400, or authz's 403 for options outside its list); nothing is
        created or mounted."""
        vol = _name()
        fstab = h.base / f"fstab-{uuid.uuid4().hex[:6]}"
        data = Path(h.d.data_root) / "volumes" / vol / "_data"
        fstab.write_text(f"/ {data} none bind 0 0\n")
        try:
            for opts in (
                {"type": "tmpfs", "device": f"-T{fstab}"},
                {"type": "tmpfs", "device": "tmpfs", "o": f"size=1m,-T{fstab}"},
                {"type": "tmpfs", "device": "tmpfs", "o": "remount"},
            ):
                status, out = h.http("POST", "/volumes/create", {"Name": vol, "DriverOpts": opts})
                assert status in (400, 403), (opts, out)  # the engine's check or authz's
            status, _ = h.http("GET", f"/volumes/{vol}")
            assert status == 404
        finally:
            fstab.unlink()


def _bind_body(source: str, cmd: list[str], *, mount: bool = False) -> dict:
    hc: dict = (
        {"Mounts": [{"Type": "bind", "Source": source, "Target": "/y"}]}
        if mount
        else {"Binds": [f"{source}:/y"]}
    )
    return {"Image": DEFAULT_TAG, "Cmd": cmd, "Labels": {LABEL: "1"}, "HostConfig": hc}


def _in_allowed(h: Arena, script: str) -> None:
    """Run C{script} in an operator container that binds allowed-bind-paths at /a."""
    h.ok("operator", "run", "--rm", "--label", f"{LABEL}=1", "-v", f"{h.allowed}:/a",
         DEFAULT_TAG, "sh", "-c", script)  # fmt: skip


def _probe(h: Arena) -> list[str]:
    return ["sh", "-c",
            f'echo "seen $(stat -c %d:%i /y)"; [ -e /y{h.canary_dir} ] && echo ESCAPED; true']  # fmt: skip


class OperatorBindConfinementTests:
    """A bind under allowed-bind-paths is checked at create, then opened beneath its allowed
    root at every use: an operator who swaps its source for a link out (from another container
    that binds the allowed directory) never gets the host's files."""

    def test_bind_source_swapped_for_link_after_create(self, h: Arena) -> None:
        for mount in (False, True):
            x, c = f"x-{uuid.uuid4().hex[:8]}", _name()
            (h.allowed / x).mkdir()
            status, out = h.http("POST", f"/containers/create?name={c}",
                                 _bind_body(f"{h.allowed}/{x}", _probe(h), mount=mount))  # fmt: skip
            assert status == 201, out
            _in_allowed(h, f"rmdir /a/{x} && ln -s / /a/{x}")
            assert os.path.islink(h.allowed / x)
            status, out = h.http("POST", f"/containers/{c}/start")
            assert status == 400 and b"escapes the base directory" in out, out
            # cp out of and into the stopped container: the guard refuses the operator (the
            # source is no longer under allowed-bind-paths); the cp helper's view, reached by an
            # admin, opens the bind beneath its root as start does
            h.op_fails("cp", f"{c}:/y{h.canary_dir}/secret", "-")
            r = h.cli("admin", "cp", f"{c}:/y{h.canary_dir}/secret", "-")
            assert r.returncode != 0 and "escapes the base directory" in r.stderr, r.stderr
            src = h.base / f"planted-{uuid.uuid4().hex[:6]}"
            src.write_text("operator\n")
            try:
                h.op_fails("cp", str(src), f"{c}:/y{h.canary_dir}/")
                r = h.cli("admin", "cp", str(src), f"{c}:/y{h.canary_dir}/")
                assert r.returncode != 0, r.stdout  # the CLI's HEAD got the 400 first
            finally:
                src.unlink()
            assert not (h.canary_dir / src.name).exists()
            for role in ("operator", "admin"):
                status, _ = h.http(
                    "HEAD", f"/containers/{c}/archive?path=/y{h.canary_dir}/secret", role=role
                )
                assert status in (400, 403), (role, status)

    def test_link_inside_allowed_root_is_followed(self, h: Arena) -> None:
        """A link that stays inside the allowed directory still works (dockerd's rule)."""
        x, real, c = f"x-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}", _name()
        (h.allowed / x).mkdir()
        (h.allowed / real).mkdir()
        (h.allowed / real / "inside").write_text("in\n")
        status, out = h.http("POST", f"/containers/create?name={c}",
                             _bind_body(f"{h.allowed}/{x}", ["cat", "/y/inside"]))  # fmt: skip
        assert status == 201, out
        _in_allowed(h, f"rmdir /a/{x} && ln -s {real} /a/{x}")
        status, out = h.http("POST", f"/containers/{c}/start")
        assert status == 204, out
        h.http("POST", f"/containers/{c}/wait")
        assert h.ok("operator", "logs", c) == "in\n"

    def test_bind_source_flipped_during_start(self, h: Arena) -> None:
        """An operator container flips the source between a directory and a link to /; the
        victim, started many times, never sees the host's root."""
        x, racer, victim = f"x-{uuid.uuid4().hex[:8]}", _name(), _name()
        (h.allowed / x).mkdir()
        status, out = h.http("POST", f"/containers/create?name={victim}",
                             _bind_body(f"{h.allowed}/{x}", _probe(h)))  # fmt: skip
        assert status == 201, out
        h.ok(
            "operator", "run", "-d", "--label", f"{LABEL}=1", "--name", racer,
            "-v", f"{h.allowed}:/a", DEFAULT_TAG, "sh", "-c",
            f"while true; do mkdir /a/{x}; usleep 150000; rmdir /a/{x}; ln -s / /a/{x}; "
            f"rm -f /a/{x}; done 2>/dev/null",
        )  # fmt: skip
        _start_while_flipping(h, victim)

    def test_link_out_of_the_root_refused_at_create(self, h: Arena) -> None:
        """A link planted inside allowed-bind-paths that points out of it (`esc -> <canary>`):
        a bind of it, or of a path through it, and a bind volume made on it, are refused at
        create (403, the link resolved by the daemon off its reactor); nothing is created."""
        link = f"esc-{uuid.uuid4().hex[:8]}"
        os.symlink(h.canary_dir, h.allowed / link)
        try:
            for source in (f"{h.allowed}/{link}", f"{h.allowed}/{link}/secret"):
                for mount in (False, True):
                    c = _name()
                    status, out = h.http(
                        "POST",
                        f"/containers/create?name={c}",
                        _bind_body(source, ["true"], mount=mount),
                    )
                    assert status == 403 and b"not under allowed-bind-paths" in out, (source, out)
                    assert h.http("GET", f"/containers/{c}/json")[0] == 404
            vol = _name()
            err = h.op_fails("volume", "create", "--opt", "type=none", "--opt", "o=bind",
                             "--opt", f"device={h.allowed}/{link}", vol)  # fmt: skip
            assert "not under allowed-bind-paths" in err, err
            assert vol not in h.ok("admin", "volume", "ls", "-q").split()
        finally:
            os.unlink(h.allowed / link)

    def test_missing_source_created_beneath_the_root(self, h: Arena) -> None:
        """`-v <allowed>/l/new:/y` admitted while `l` is a directory; `l -> /` by start: the
        missing source is not created on the host (mkdir -p beneath the allowed root)."""
        link, new, c = f"l-{uuid.uuid4().hex[:8]}", f"pyd-t-new-{uuid.uuid4().hex[:8]}", _name()
        (h.allowed / link).mkdir()
        status, out = h.http("POST", f"/containers/create?name={c}",
                             _bind_body(f"{h.allowed}/{link}/{new}", ["true"]))  # fmt: skip
        assert status == 201, out
        assert (h.allowed / link / new).is_dir()  # created at create, beneath the root
        _in_allowed(h, f"rm -rf /a/{link} && ln -s / /a/{link}")
        try:
            status, out = h.http("POST", f"/containers/{c}/start")
            assert status == 400 and b"escapes the base directory" in out, out
            assert not os.path.lexists(f"/{new}")
        finally:
            if os.path.isdir(f"/{new}") and not os.path.islink(f"/{new}"):
                os.rmdir(f"/{new}")

    def test_bind_volume_device_swapped_for_link(self, h: Arena) -> None:
        """An operator's `type=none,o=bind,device=<allowed>/x` volume, `x -> /` before its first
        use: the device is opened beneath the allowed root, the mount is refused; with the link
        inside the root, the volume is that directory."""
        x, vol, c = f"x-{uuid.uuid4().hex[:8]}", _name(), _name()
        (h.allowed / x).mkdir()
        h.ok("operator", "volume", "create", "--opt", "type=none", "--opt", "o=bind",
             "--opt", f"device={h.allowed}/{x}", vol)  # fmt: skip
        body = _bind_body("", _probe(h))
        body["HostConfig"] = {"Binds": [f"{vol}:/y"]}
        status, out = h.http("POST", f"/containers/create?name={c}", body)
        assert status == 201, out
        _in_allowed(h, f"rmdir /a/{x} && ln -s / /a/{x}")
        status, out = h.http("POST", f"/containers/{c}/start")
        assert status == 400 and b"escapes the base directory" in out, out
        data = Path(h.d.data_root) / "volumes" / vol / "_data"
        assert (
            os.stat(data).st_ino != os.stat("/").st_ino
            or os.stat(data).st_dev != os.stat("/").st_dev
        )
        # the link moved inside the allowed directory: followed there
        inside = f"r-{uuid.uuid4().hex[:8]}"
        (h.allowed / inside).mkdir()
        (h.allowed / inside / "inside").write_text("in\n")
        os.unlink(h.allowed / x)
        os.symlink(inside, h.allowed / x)
        h.ok("operator", "rm", c)
        out = h.ok("operator", "run", "--rm", "--label", f"{LABEL}=1", "-v", f"{vol}:/y",
                   DEFAULT_TAG, "cat", "/y/inside")  # fmt: skip
        assert out == "in\n"
