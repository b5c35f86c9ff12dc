"""`docker build` (classic API, CLI 28) of Dockerfiles written for BuildKit's frontend (issue 20):
the syntax line, platform ARGs, heredocs, RUN --mount (cache, bind, tmpfs), COPY --chmod/--link,
and the refusals, checked in the image the build makes."""

from __future__ import annotations

import json
import os
import platform
import secrets
from pathlib import Path

import pytest

from tests.e2e.test_build_cli import _ctx, _image_files
from tests.helpers.daemon import PydDaemon
from tests.helpers.images import DEFAULT_TAG, load_busybox

pytestmark = pytest.mark.e2e

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _run(d: PydDaemon, tag: str, *cmd: str) -> str:
    return d.docker("run", "--rm", tag, *cmd).stdout


def _cache_dirs(d: PydDaemon) -> list[str]:
    root = Path(d.data_root) / "builder-cache"
    return sorted(n for n in os.listdir(root) if not n.startswith(".")) if root.exists() else []


class FrontendBuildTests:
    """One Dockerfile with most of the modern syntax, then its effects in the image."""

    def test_modern_dockerfile(self, pyd_daemon: PydDaemon) -> None:
        """syntax line, TARGETARCH, RUN <<EOF, COPY <<EOF, cache/bind/tmpfs mounts, --chmod,
        --link: the image has exactly those effects; the cache mount survives --no-cache; builder
        prune and system df show and reclaim it."""
        d = pyd_daemon
        load_busybox(d)
        tag = "pyd-t-" + secrets.token_hex(3)
        ctx = _ctx(
            d.base,
            {
                "Dockerfile": (
                    "# syntax=docker/dockerfile:1\n"
                    "# check=skip=JSONArgsRecommended\n"
                    f"FROM --platform=$BUILDPLATFORM {DEFAULT_TAG} AS base\n"
                    "ARG TARGETARCH\n"
                    "ARG TARGETPLATFORM\n"
                    'RUN echo "$TARGETARCH $TARGETPLATFORM" > /arch\n'
                    "RUN <<EOF\n"
                    "echo one > /heredoc\n"
                    "echo two >> /heredoc\n"
                    "EOF\n"
                    "RUN cat <<'EOT' > /literal\n"
                    "$HOME stays\n"
                    "EOT\n"
                    "ENV WHO=pyd\n"
                    "COPY <<EOF /etc/greeting\n"
                    "hello $WHO\n"
                    "EOF\n"
                    "RUN --mount=type=cache,target=/var/cache/app,id=appcache "
                    "cat /var/cache/app/count 2>/dev/null > /seen || true; "
                    "echo x >> /var/cache/app/count; wc -l < /var/cache/app/count > /count\n"
                    "RUN --mount=type=bind,source=data,target=/mnt/data "
                    "cat /mnt/data/in.txt > /from-bind; touch /mnt/data/new 2>/dev/null; "
                    "echo done >> /from-bind\n"
                    "RUN --mount=type=tmpfs,target=/scratch,size=1m "
                    "echo t > /scratch/t && cat /scratch/t > /from-tmpfs\n"
                    "COPY --chmod=0751 tool.sh /usr/local/bin/tool\n"
                    "COPY --link data/in.txt /linked/in.txt\n"
                ),
                "data/in.txt": "bound content\n",
                "tool.sh": "#!/bin/sh\necho tool\n",
            },
        )
        r = d.docker("build", "-t", tag, str(ctx))
        assert f"Successfully tagged {tag}:latest" in r.stdout
        assert _run(d, tag, "cat", "/arch") == f"{ARCH} linux/{ARCH}\n"
        assert _run(d, tag, "cat", "/heredoc") == "one\ntwo\n"
        assert _run(d, tag, "cat", "/literal") == "$HOME stays\n"
        assert _run(d, tag, "cat", "/etc/greeting") == "hello pyd\n"
        assert _run(d, tag, "cat", "/count").strip() == "1"
        assert _run(d, tag, "cat", "/from-bind") == "bound content\ndone\n"
        assert _run(d, tag, "cat", "/from-tmpfs") == "t\n"
        assert _run(d, tag, "stat", "-c", "%a", "/usr/local/bin/tool").strip() == "751"
        assert _run(d, tag, "tool") == "tool\n"
        assert _run(d, tag, "cat", "/linked/in.txt") == "bound content\n"
        # Nothing of the mounts is left in the image: no cache dir, no mount points.
        names = _image_files(d, tag)
        for gone in ("var/cache/app", "mnt", "mnt/data", "scratch"):
            assert gone not in names, gone
        assert not any(n.startswith(("var/cache/app/", "mnt/", "scratch/")) for n in names)
        # The cache mount's content survives into the next --no-cache build.
        d.docker("build", "--no-cache", "-t", tag, str(ctx))
        assert _run(d, tag, "cat", "/count").strip() == "2"
        assert _run(d, tag, "cat", "/seen") == "x\n"
        # ... is shown by system df and builder prune, and reclaimed by prune.
        assert len(_cache_dirs(d)) == 1
        df = d.docker("system", "df", "--format", "{{json .}}").stdout.splitlines()
        rows = {json.loads(x)["Type"]: json.loads(x) for x in df}
        assert rows["Build Cache"]["TotalCount"] == "1"
        verbose = d.docker("system", "df", "-v").stdout
        assert "exec.cachemount" in verbose
        pr = d.docker("builder", "prune", "-f")
        assert "Total reclaimed space" in pr.stdout
        assert _cache_dirs(d) == []
        d.docker("build", "--no-cache", "-t", tag, str(ctx))
        assert _run(d, tag, "cat", "/count").strip() == "1"
        d.docker("builder", "prune", "-f")
        d.docker("rmi", tag)

    def test_cache_key_covers_new_options(self, pyd_daemon: PydDaemon) -> None:
        """A changed --chmod or cache id misses the cache; the same Dockerfile hits it."""
        d = pyd_daemon
        load_busybox(d)

        def dockerfile(mode: str, cid: str) -> str:
            return (
                f"# syntax=docker/dockerfile:1.7\nFROM {DEFAULT_TAG}\n"
                f"COPY --chmod={mode} f /f\n"
                f"RUN --mount=type=cache,target=/c,id={cid} true\n"
            )

        ctx = _ctx(d.base, {"Dockerfile": dockerfile("0644", "a"), "f": "x\n"})
        d.docker("build", str(ctx))
        again = d.docker("build", str(ctx)).stdout
        assert again.count("Using cache") == 2
        (ctx / "Dockerfile").write_text(dockerfile("0600", "a"))
        assert "Using cache" not in d.docker("build", str(ctx)).stdout
        (ctx / "Dockerfile").write_text(dockerfile("0600", "b"))
        out = d.docker("build", str(ctx)).stdout
        assert out.count("Using cache") == 1  # the COPY hits, the RUN with a new id misses
        d.docker("builder", "prune", "-f")


class HeredocAndCopyFlagTests:
    """Heredoc RUN forms and COPY --parents/--exclude with the real runtime."""

    def test_shebang_heredoc_parents_exclude(self, pyd_daemon: PydDaemon) -> None:
        """A #! heredoc runs as a file from /dev/pipes (nothing of it left in the image);
        several heredocs go to the shell; --parents keeps paths; --exclude skips."""
        d = pyd_daemon
        load_busybox(d)
        tag = "pyd-t-" + secrets.token_hex(3)
        ctx = _ctx(
            d.base,
            {
                "Dockerfile": f"FROM {DEFAULT_TAG}\n"
                'RUN <<EOF\n#!/bin/sh -e\necho "script $0" > /shebang\nEOF\n'
                "RUN cat <<A > /a && cat <<-B > /b\nfirst\nA\n\tsecond\n\tB\n"
                "COPY --parents src/x/one.txt /p/\n"
                "COPY --exclude=*.log src/ /e/\n",
                "src/x/one.txt": "1\n",
                "src/debug.log": "L\n",
            },
        )
        d.docker("build", "-t", tag, str(ctx))
        assert _run(d, tag, "cat", "/shebang") == "script /dev/pipes/EOF\n"
        assert _run(d, tag, "cat", "/a", "/b") == "first\nsecond\n"
        assert _run(d, tag, "cat", "/p/src/x/one.txt") == "1\n"
        assert _run(d, tag, "find", "/e").split() == ["/e", "/e/x", "/e/x/one.txt"]
        assert not any(n.startswith("dev/pipes") for n in _image_files(d, tag))
        d.docker("rmi", tag)


class FrontendRefusalTests:
    """What the classic API cannot do is refused with a clear message, and nothing is built."""

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (
                "# syntax=example.com/evil/frontend:1\nFROM {base}\n",
                "unsupported Dockerfile frontend 'example.com/evil/frontend:1'",
            ),
            (
                "FROM {base}\nRUN --mount=type=secret,id=tok,required cat /run/secrets/tok\n",
                "carries no BuildKit session",
            ),
            (
                "FROM {base}\nRUN --mount=type=ssh,required=true true\n",
                "carries no BuildKit session",
            ),
            (
                "FROM {base}\nADD https://github.com/moby/moby.git /src\n",
                "git sources are not supported",
            ),
            ("FROM --platform=linux/s390x {base}\n", "is not supported: this daemon builds for"),
            ("FROM {base}\nRUN --security=insecure true\n", "security.insecure entitlement"),
        ],
    )
    def test_refused(self, pyd_daemon: PydDaemon, body: str, message: str) -> None:
        """Each refusal names the reason; the build fails."""
        d = pyd_daemon
        load_busybox(d)
        ctx = _ctx(d.base, {"Dockerfile": body.format(base=DEFAULT_TAG)})
        r = d.docker("build", str(ctx), check=False)
        assert r.returncode != 0
        assert message in r.stderr + r.stdout
        assert "Traceback" not in r.stderr + r.stdout

    def test_optional_secret_is_absent(self, pyd_daemon: PydDaemon) -> None:
        """required=false: the step runs without the secret."""
        d = pyd_daemon
        load_busybox(d)
        ctx = _ctx(
            d.base,
            {
                "Dockerfile": f"FROM {DEFAULT_TAG}\n"
                "RUN --mount=type=secret,id=tok test ! -e /run/secrets/tok\n"
            },
        )
        d.docker("build", str(ctx))


class FrontendAttackTests:
    """Mount sources a Dockerfile can steer stay inside their roots (the host is untouched)."""

    def test_bind_sources_never_reach_the_host(self, pyd_daemon: PydDaemon) -> None:
        """A context link and a stage link to a host directory, used as bind sources (rw), find
        nothing: the build fails plainly, the host canary is neither read nor changed; a cache
        holding links to the host's / and a FIFO is listed and pruned without following them."""
        d = pyd_daemon
        load_busybox(d)
        canary = d.base / ("canary-" + secrets.token_hex(3))
        canary.mkdir()
        (canary / "secret").write_text("host secret\n")
        ctx = _ctx(
            d.base,
            {"Dockerfile": f"FROM {DEFAULT_TAG}\n"
             "RUN --mount=type=bind,source=evil,target=/e,rw "
             "sh -c 'cat /e/secret; echo pwned > /e/secret'\n"},
        )  # fmt: skip
        os.symlink(str(canary), ctx / "evil")
        r = d.docker("build", str(ctx), check=False)
        assert r.returncode != 0
        assert "RUN --mount: failed to mount evil: not found" in r.stderr + r.stdout
        assert "host secret" not in r.stdout
        stage = _ctx(
            d.base,
            {"Dockerfile": f"FROM {DEFAULT_TAG} AS s\nRUN ln -s {canary} /evil\n"
             f"FROM {DEFAULT_TAG}\nRUN --mount=from=s,source=/evil,target=/e,rw "
             "sh -c 'cat /e/secret; echo pwned > /e/secret'\n"},
        )  # fmt: skip
        r = d.docker("build", str(stage), check=False)
        assert r.returncode != 0
        assert "failed to mount /evil: not found" in r.stderr + r.stdout
        assert "host secret" not in r.stdout
        assert (canary / "secret").read_text() == "host secret\n"
        assert sorted(os.listdir(canary)) == ["secret"]
        planted = _ctx(
            d.base,
            {"Dockerfile": f"FROM {DEFAULT_TAG}\nRUN --mount=type=cache,target=/c "
             f"ln -s / /c/root && ln -s {canary} /c/canary && mkfifo /c/fifo\n"},
        )  # fmt: skip
        d.docker("build", str(planted))
        assert "exec.cachemount" in d.docker("system", "df", "-v").stdout
        d.docker("builder", "prune", "-f")
        assert _cache_dirs(d) == []
        assert (canary / "secret").read_text() == "host secret\n"


class EntitlementTests:
    """daemon.json's builder.entitlements (dockerd's keys) decide RUN --security/--network."""

    def test_insecure_granted_and_host_network_withdrawn(self, pyd_daemon: PydDaemon) -> None:
        """security-insecure=true: an admin's RUN --security=insecure runs with every
        capability; network-host=false: RUN --network=host is refused."""
        d = pyd_daemon
        d.stop()
        (d.base / "daemon.json").write_text(
            json.dumps({"builder": {"entitlements": {"security-insecure": True,
                                                     "network-host": False}}})
        )  # fmt: skip
        d.start()
        try:
            load_busybox(d)
            tag = "pyd-t-" + secrets.token_hex(3)
            ctx = _ctx(
                d.base,
                {"Dockerfile": f"FROM {DEFAULT_TAG}\n"
                 "RUN --security=insecure grep CapEff /proc/self/status > /caps\n"},
            )  # fmt: skip
            d.docker("build", "-t", tag, str(ctx))
            caps = int(_run(d, tag, "cat", "/caps").split()[1], 16)
            assert caps & (1 << 21)  # CAP_SYS_ADMIN: only a privileged step has it
            d.docker("rmi", tag)
            (ctx / "Dockerfile").write_text(f"FROM {DEFAULT_TAG}\nRUN --network=host true\n")
            r = d.docker("build", str(ctx), check=False)
            assert r.returncode != 0
            assert "does not grant the network.host entitlement" in r.stderr + r.stdout
        finally:
            d.stop()
            (d.base / "daemon.json").write_text("{}")
            d.start()
