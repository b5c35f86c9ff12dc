"""Run docker-py's own integration suite against a pyd started from this tree, offline (owned
by the clients' compatibility checks; docs/compatibility.md records the results).

    python -m tests.helpers.dockerpy_suite DOCKER_PY_CHECKOUT [--pyd-arg=ARG ...] [pytest args]

DOCKER_PY_CHECKOUT is a directory holding docker-py's C{tests/} of the installed release (for
example C{git --git-dir=<docker-py.git> archive 7.2.0 tests pytest.ini | tar -x -C DIR}). The
suite pulls Docker Hub images: a local registry (Debian's docker-registry) stands in as pyd's
registry mirror, seeded with the offline busybox image under the names the suite pulls
(C{busybox}, C{alpine:3.10}, C{alpine:latest}, C{hello-world}); alpine gets what tests read from
the real one (a C{postgres} user, C{/var/opt}), hello-world is an image of its own. pyd listens
on its unix socket and on a loopback TCP port (C{PYD_TCP} in the suite's environment: docker-py
opens websockets over TCP only). The suite's client state (contexts) lives in a temporary HOME;
paramiko, which docker-py's test helpers import for ssh only, is stubbed when absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, GROUP, PASSWD, File, load_busybox
from tests.helpers.registry import Registry, free_port

PYTHON = sys.executable
ALPINE_FILES = {
    "/etc/passwd": PASSWD + "postgres:x:70:70:postgres:/var/lib/postgresql:/bin/sh\n",
    "/etc/group": GROUP + "postgres:x:70:\n",
    "/var/opt": File(kind="dir", mode=0o755),
}
# Docker Hub name -> the local image pushed under it
HUB_NAMES = {
    "library/busybox:latest": DEFAULT_TAG,
    "library/alpine:3.10": "pyd-dp/alpine:x",
    "library/alpine:latest": "pyd-dp/alpine:x",
    "library/hello-world:latest": "pyd-dp/hello:x",
}


def seed(d: PydDaemon, reg: Registry) -> None:
    """Push the stand-ins for the suite's Hub images to C{reg}; pull busybox and alpine:3.10."""
    load_busybox(d)
    load_busybox(d, tag="pyd-dp/alpine:x", extra_files=ALPINE_FILES)
    load_busybox(
        d,
        tag="pyd-dp/hello:x",
        extra_files={"/hello": "Hello from Docker!\n"},
        config={"Cmd": ["cat", "/hello"]},
    )
    for name, local in HUB_NAMES.items():
        d.docker("tag", local, f"{reg.host}/{name}")
        d.docker("push", f"{reg.host}/{name}")
        d.docker("rmi", f"{reg.host}/{name}")
    d.docker("rmi", "pyd-dp/alpine:x", "pyd-dp/hello:x", DEFAULT_TAG)
    for name in ("busybox:latest", "alpine:3.10"):
        d.docker("pull", name)


def main(argv: list[str]) -> int:
    """Start, seed, run pytest in the checkout, clean up; pytest's exit status."""
    if not argv or not (Path(argv[0]) / "tests" / "integration").is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    checkout = str(Path(argv[0]).resolve())
    pyd_args = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("--pyd-arg=")]
    pytest_args = [a for a in argv[1:] if not a.startswith("--pyd-arg=")]
    tcp = f"tcp://127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory(prefix="pyd-dockerpy-") as tmp:
        home, stubs = Path(tmp) / "home", Path(tmp) / "stubs"
        (home / ".docker").mkdir(parents=True)
        (home / ".docker" / "config.json").write_text("{}")
        stubs.mkdir()
        try:
            import paramiko  # noqa: F401
        except ImportError:
            (stubs / "paramiko.py").write_text("class Channel:\n    pass\n")
        reg = Registry().start()
        d = PydDaemon(
            extra_args=[
                *("--registry-mirror", reg.url, "--insecure-registry", reg.host),
                *("-H", tcp, "--insecure-tcp-without-tls-gives-root-to-anyone"),
                *pyd_args,
            ]
        )
        try:
            d.start()
            seed(d, reg)
            env = {
                **os.environ,
                "DOCKER_HOST": d.host,
                "PYD_TCP": tcp,
                "HOME": str(home),
                "PYTHONPATH": os.pathsep.join(
                    filter(None, (str(stubs), os.environ.get("PYTHONPATH")))
                ),
            }
            cmd = [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args]
            return subprocess.run(cmd, cwd=checkout, env=env, check=False).returncode
        finally:
            try:
                d.cleanup()
            finally:
                reg.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
