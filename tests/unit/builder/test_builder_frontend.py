"""The step executor with BuildKit's frontend syntax (issue 20): RUN mounts, network and security
modes, heredoc RUNs, COPY --parents/--exclude/--link, ADD --checksum, platform ARGs and the cache
keys, with the fake image store and a fake runtime that plays the mounts."""

from __future__ import annotations

import os
from typing import Any

from pyd.engine.builder.frontend import platform_args
from tests.fakes.build import FakeBuildContainers
from tests.helpers.sync import run_sync
from tests.unit.builder.test_builder import BuilderTestCase, fake_run


class MountingContainers(FakeBuildContainers):
    """Plays the runtime's part of C{HostConfig.Mounts}: creates a stub for each target (as
    crun does), and gives the step the mount's content at the target path of its rootfs for
    the duration of the run (copied back for read-write binds of the cache)."""

    def __init__(self, images: Any) -> None:
        super().__init__(images, fake_run)
        self.host_configs: list[dict[str, Any]] = []
        self.cmds: list[list[str]] = []
        self.created_env: list[list[str]] = []

    async def run(self, container_id: str, output: Any, cancelled: Any) -> int | None:
        _, config, hc = self.created[container_id]
        self.host_configs.append(hc)
        self.cmds.append(list(config["Cmd"]))
        self.created_env.append(list(config["Env"]))
        rootfs = self.images.layers[container_id]
        for m in hc.get("Mounts") or []:
            stub = os.path.join(rootfs, m["Target"].lstrip("/"))
            os.makedirs(stub, exist_ok=True)
            if m["Type"] == "bind" and os.path.isdir(m["Source"]) and not m["ReadOnly"]:
                # the step appends a line to "count" in every read-write mount
                with open(os.path.join(m["Source"], "count"), "a") as f:
                    f.write("x\n")
                with open(os.path.join(m["Source"], "count")) as f:
                    n = len(f.read().splitlines())
                with open(os.path.join(rootfs, "count"), "w") as f:
                    f.write(f"{n}\n")
        out, code = self.run_fn(list(config["Cmd"]), config, rootfs)
        if out:
            output(out)
        return code


class FrontendBuilderTests(BuilderTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.containers = MountingContainers(self.images)
        self.svc.containers = self.containers

    def test_cache_mount_persists_and_is_pruned(self) -> None:
        """A cache mount is a daemon-made directory under the cache root, kept across
        --no-cache builds; its stub target is not in the image; prune removes it and df lists
        it."""
        df = "FROM busybox\nRUN --mount=type=cache,target=/var/cache/x,uid=5,mode=0750 true\n"
        res, _ = self.build({"Dockerfile": df})
        m = self.containers.host_configs[-1]["Mounts"][0]
        self.assertEqual(m["Target"], "/var/cache/x")
        self.assertTrue(m["Source"].startswith(self.svc.cache.root + "/"))
        self.assertFalse(m["ReadOnly"])
        st = os.stat(m["Source"])
        self.assertEqual((st.st_uid, st.st_mode & 0o7777), (5, 0o750))
        self.assertEqual(self.file(res.image_id, "/count"), "1\n")
        self.assertFalse(os.path.exists(os.path.join(self.images.image_dir(res.image_id), "var")))
        res, _ = self.build({"Dockerfile": df}, no_cache=True)
        self.assertEqual(self.file(res.image_id, "/count"), "2\n")
        usage = self.successResultOf(self.svc.disk_usage())["build_cache"]
        self.assertEqual(len(usage), 1)
        self.assertEqual(usage[0]["Type"], "exec.cachemount")
        self.assertEqual(usage[0]["UsageCount"], 2)

        ids, size = run_sync(self.svc.prune())
        self.assertEqual(ids, [usage[0]["ID"]])
        self.assertGreater(size, 0)
        self.assertEqual(self.successResultOf(self.svc.disk_usage())["build_cache"], [])

    def test_cache_ids_are_digests(self) -> None:
        """An id like ../../etc names nothing on the host: the directory is a digest."""
        self.build({"Dockerfile": "FROM busybox\nRUN --mount=type=cache,target=/c,id=../../x y\n"})
        src = self.containers.host_configs[-1]["Mounts"][0]["Source"]
        self.assertEqual(os.path.dirname(os.path.dirname(src)), self.svc.cache.root)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x")))

    def test_bind_mount_is_a_copy_and_leaves_nothing(self) -> None:
        """A bind from the context is a read-only copy in the scratch dir; writes through a rw
        bind are discarded with it; the stub is removed before the commit."""
        res, _ = self.build(
            {
                "Dockerfile": "FROM busybox\n"
                "RUN --mount=type=bind,source=data,target=/mnt/d,rw true\n",
                "data/in.txt": "in",
            }
        )
        m = self.containers.host_configs[-1]["Mounts"][0]
        self.assertEqual((m["Target"], m["ReadOnly"]), ("/mnt/d", False))
        self.assertNotIn("/context", m["Source"])
        self.assertFalse(os.path.exists(m["Source"]))  # removed after the step
        self.assertFalse(os.path.exists(os.path.join(self.images.image_dir(res.image_id), "mnt")))

    def test_bind_source_link_stays_in_context(self) -> None:
        """A context link to the host's /etc, used as a bind source, resolves inside the
        context (missing there: the step fails plainly, no host file is copied)."""
        err = self.build_fails(
            {
                "Dockerfile": "FROM busybox\nRUN --mount=type=bind,source=etc,target=/e true\n",
                "etc": "->/etc",
            }
        )
        self.assertIn("RUN --mount: failed to mount etc: not found", err.message)

    def test_bind_from_stage_and_tmpfs(self) -> None:
        """from= a stage mounts a copy of its path; tmpfs carries its size."""
        self.build(
            {
                "Dockerfile": "FROM busybox AS b\nRUN echo hi > /out\n"
                "FROM busybox\nRUN --mount=from=b,source=/out,target=/o "
                "--mount=type=tmpfs,target=/t,size=1k true\n",
            }
        )
        bind, tmpfs = self.containers.host_configs[-1]["Mounts"]
        self.assertEqual((bind["Type"], bind["Target"], bind["ReadOnly"]), ("bind", "/o", True))
        self.assertEqual(
            tmpfs, {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024}}
        )

    def test_secret_and_ssh(self) -> None:
        """Required secret/ssh mounts are refused (no session); optional ones are absent."""
        err = self.build_fails(
            {"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=t,required true\n"}
        )
        self.assertIn("carries no BuildKit session", err.message)
        err = self.build_fails({"Dockerfile": "FROM busybox\nRUN --mount=type=ssh,required true\n"})
        self.assertIn("no SSH agent socket", err.message)
        self.build({"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=t true\n"})
        self.assertNotIn("Mounts", self.containers.host_configs[-1])

    def test_network_and_security(self) -> None:
        """--network=none/host set the step's mode; host is refused when the caller's role may
        not; --security=insecure needs the daemon option and makes a privileged step."""
        self.build({"Dockerfile": "FROM busybox\nRUN --network=none true\n"})
        self.assertEqual(self.containers.host_configs[-1]["NetworkMode"], "none")
        self.build({"Dockerfile": "FROM busybox\nRUN --network=host true\n"})
        self.assertEqual(self.containers.host_configs[-1]["NetworkMode"], "host")
        self.build(
            {"Dockerfile": "FROM busybox\nRUN --network=default true\n"}, network_mode="none"
        )
        self.assertEqual(self.containers.host_configs[-1]["NetworkMode"], "none")
        n = len(self.containers.host_configs)
        err = self.build_fails(
            {"Dockerfile": "FROM busybox\nRUN --network=host true\n"},
            refused={"network.host": "pyd authorization: role operator may not x"},
        )
        self.assertEqual(err.message, "pyd authorization: role operator may not x")
        self.assertEqual(len(self.containers.host_configs), n)  # no step container ran
        self.svc.allow_host_network = False  # daemon.json builder.entitlements.network-host
        err = self.build_fails({"Dockerfile": "FROM busybox\nRUN --network=host true\n"})
        self.assertIn("does not grant the network.host entitlement", err.message)
        err = self.build_fails({"Dockerfile": "FROM busybox\nRUN --security=insecure true\n"})
        self.assertIn("does not grant the security.insecure entitlement", err.message)
        self.svc.allow_insecure = True
        self.build({"Dockerfile": "FROM busybox\nRUN --security=insecure true\n"})
        self.assertTrue(self.containers.host_configs[-1]["Privileged"])
        err = self.build_fails(
            {"Dockerfile": "FROM busybox\nRUN --security=insecure true\n"},
            refused={"security.insecure": "role operator may not y"},
        )
        self.assertEqual(err.message, "role operator may not y")

    def test_heredoc_runs(self) -> None:
        """One heredoc runs its body in the shell; several (or a program) go to the shell as
        a script; a #! body runs as a file mounted read-only at /dev/pipes."""
        self.build(
            {
                "Dockerfile": "FROM busybox\nRUN <<EOF\necho a\necho b\nEOF\n"
                "RUN python3 <<EOF\nprint(1)\nEOF\n"
                "RUN <<EOF\n#!/usr/bin/env python3\nprint(2)\nEOF\n"
            }
        )
        c1, c2, c3 = self.containers.cmds[-3:]
        self.assertEqual(c1, ["/bin/sh", "-c", "echo a\necho b\n"])
        self.assertEqual(c2, ["/bin/sh", "-c", "python3 <<EOF\nprint(1)\nEOF"])
        self.assertEqual(c3, ["/bin/sh", "-c", "/dev/pipes/EOF"])
        m = self.containers.host_configs[-1]["Mounts"][0]
        self.assertEqual((m["Target"], m["ReadOnly"]), ("/dev/pipes", True))

    def test_platform_args(self) -> None:
        """TARGETARCH & co. are global: FROM expands them; a stage sees them after a bare ARG;
        FROM --platform=$BUILDPLATFORM is the host; another platform is refused."""
        plat = platform_args()
        _res, _ = self.build(
            {
                "Dockerfile": "ARG TARGETOS\nFROM --platform=$BUILDPLATFORM busybox\n"
                "ARG TARGETARCH\nRUN echo $TARGETARCH > /a\n",
            }
        )
        self.assertIn(f"TARGETARCH={plat['TARGETARCH']}", self.containers.created_env[-1])
        err = self.build_fails({"Dockerfile": "FROM --platform=linux/s390x busybox\n"})
        self.assertIn("'linux/s390x' is not supported", err.message)

    def test_copy_parents_exclude_link(self) -> None:
        """--parents keeps the path (from the root or a /./ pivot); --exclude skips matches;
        --link gives the same files."""
        files = {
            "Dockerfile": "FROM busybox\n"
            "COPY --parents a/b/f.txt /p/\n"
            "COPY --parents ./a/./b/f.txt /q/\n"
            "COPY --exclude=*.log --exclude=skip a/ /e/\n"
            "COPY --link a/b/f.txt /l/\n",
            "a/b/f.txt": "F",
            "a/x.log": "L",
            "a/skip/y": "S",
            "a/keep": "K",
        }
        res, _ = self.build(files)
        d = self.images.image_dir(res.image_id)
        self.assertEqual(self.file(res.image_id, "/p/a/b/f.txt"), "F")
        self.assertEqual(self.file(res.image_id, "/q/b/f.txt"), "F")
        self.assertEqual(sorted(os.listdir(os.path.join(d, "e"))), ["b", "keep"])
        self.assertEqual(self.file(res.image_id, "/l/f.txt"), "F")

    def test_cache_keys(self) -> None:
        """A changed --chmod, --link, --exclude, cache id or network misses; the same hits;
        classic steps keep their keys."""
        base = "FROM busybox\nCOPY {flag} f /f\nRUN {run} true\n"

        def hits(flag: str, run: str) -> int:
            _, text = self.build({"Dockerfile": base.format(flag=flag, run=run), "f": "x"})
            return text.count("Using cache")

        hits("--chmod=0644", "--mount=type=cache,target=/c,id=a")
        self.assertEqual(hits("--chmod=0644", "--mount=type=cache,target=/c,id=a"), 2)
        self.assertEqual(hits("--chmod=0600", "--mount=type=cache,target=/c,id=a"), 0)
        self.assertEqual(hits("--chmod=0600", "--mount=type=cache,target=/c,id=b"), 1)
        self.assertEqual(
            hits("--chmod=0600", "--mount=type=cache,target=/c,id=b --network=none"), 1
        )
        self.assertEqual(hits("--link --chmod=0600", "--network=none"), 0)
        self.assertEqual(hits("--exclude=z --chmod=0600", "--network=none"), 0)

    def test_add_checksum_and_git(self) -> None:
        """ADD --checksum only for one URL, in sha256:<hex> form; git sources are refused."""
        for line, msg in (
            ("ADD --checksum=sha256:" + "0" * 64 + " f /f", "checksum requires HTTP(S) sources"),
            ("ADD --checksum=md5:1 https://h/f /f", "invalid checksum digest format"),
            ("ADD https://github.com/a/b.git /src", "git sources are not supported"),
            (
                "ADD --keep-git-dir=true git@github.com:a/b.git /src",
                "git sources are not supported",
            ),
        ):
            err = self.build_fails({"Dockerfile": f"FROM busybox\n{line}\n", "f": "x"})
            self.assertIn(msg, err.message)

    def test_add_checksum_loopback(self) -> None:
        """ADD --checksum: the right digest builds, a wrong one fails naming both digests."""
        import hashlib
        import http.server
        import threading

        body = b"remote-content"

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        url = f"http://127.0.0.1:{srv.server_address[1]}/f.txt"
        good = "sha256:" + hashlib.sha256(body).hexdigest()
        res, _ = self.build({"Dockerfile": f"FROM busybox\nADD --checksum={good} {url} /d/\n"})
        self.assertEqual(self.file(res.image_id, "/d/f.txt"), "remote-content")
        bad = "sha256:" + "0" * 64
        err = self.build_fails({"Dockerfile": f"FROM busybox\nADD --checksum={bad} {url} /d/\n"})
        self.assertIn(f"digest mismatch {good}: expected {bad}", err.message)


class PruneKeepsLiveBuildsTests(BuilderTestCase):
    """C{docker builder prune} during a build leaves that build's scratch directory alone."""

    def test_prepared_build_survives_prune_and_leftovers_do_not(self) -> None:
        """A prepared (running) build's context stays; a leftover directory of a build that no
        longer runs is reclaimed; once the build is done its directory goes too."""

        from pyd.engine.builder.builder import BuildOptions
        from tests.unit.builder.helpers import make_tar

        leftover = os.path.join(self.svc.root, "0" * 32)
        os.makedirs(os.path.join(leftover, "context"))
        prepared = run_sync(
            self.svc.prepare(make_tar({"Dockerfile": "FROM busybox\n"}), BuildOptions())
        )
        ids, _ = run_sync(self.svc.prune())
        self.assertIn("0" * 32, ids)
        self.assertNotIn(prepared.build_id, ids)
        self.assertTrue(os.path.isdir(prepared.context))
        self.assertFalse(os.path.exists(leftover))
        run_sync(self.svc.discard(prepared))
        self.assertFalse(os.path.exists(prepared.workdir))
        ids, _ = run_sync(self.svc.prune())
        self.assertNotIn(prepared.build_id, ids)
