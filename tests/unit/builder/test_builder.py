"""The classic builder's step executor, with a fake image store and container runner."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import InvalidParameter
from pyd.core.seams import InlineBlocking
from pyd.engine.builder import fs
from pyd.engine.builder.builder import BuildFailed, BuildOptions, BuildResult, BuildService
from tests.fakes.build import FakeBuildContainers, FakeBuildImages, FakeProgress
from tests.helpers.sync import run_sync
from tests.unit.builder.helpers import make_tar

BUSYBOX_CONFIG = {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]}


def fake_run(cmd: list[str], config: dict[str, Any], rootfs: str) -> tuple[bytes, int]:
    """Understands C{sh -c 'echo X > F'}, C{sh -c 'exit N'}, C{sh -c 'env'} and C{echo}."""
    script = cmd[-1] if cmd[:2] == ["/bin/sh", "-c"] else " ".join(cmd)
    if script.startswith("exit "):
        return b"", int(script.split()[1])
    if script == "env":
        return ("\n".join(config["Env"]) + "\n").encode(), 0
    if ">" in script:
        left, path = script.split(">", 1)
        path = path.strip()
        if not path.startswith("/"):
            path = os.path.join(config.get("WorkingDir") or "/", path)
        full = os.path.join(rootfs, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(left.strip().removeprefix("echo ").strip() + "\n")
        return b"", 0
    if script.startswith("echo "):
        return script[5:].encode() + b"\n", 0
    return b"", 0


class BuilderTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="pyd-t-builder-")
        self.addCleanup(fs.remove_tree, self.tmp)
        self.images = FakeBuildImages(os.path.join(self.tmp, "store"))
        self.images.add_base(
            "busybox",
            {
                "bin/sh": "sh",
                "etc/passwd": "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
                "etc/group": "root:x:0:\n",
            },
            BUSYBOX_CONFIG,
        )
        self.containers = FakeBuildContainers(self.images, fake_run)
        self.svc = BuildService(
            self.images,
            self.containers,
            InlineBlocking(),
            os.path.join(self.tmp, "builds"),
            Clock(),
        )

    def build(self, files: dict[str, bytes | str], **opts: Any) -> tuple[BuildResult, str]:
        progress = FakeProgress()
        d = Deferred.fromCoroutine(self.svc.prepare(make_tar(files), BuildOptions(**opts)))
        prepared = self.successResultOf(d)
        res = run_sync(self.svc.run(prepared, progress))
        self.progress = progress
        return res, progress.text

    def build_fails(self, files: dict[str, bytes | str], **opts: Any) -> BuildFailed:
        progress = FakeProgress()
        prepared = run_sync(self.svc.prepare(make_tar(files), BuildOptions(**opts)))
        e = self.assertRaises(BuildFailed, run_sync, self.svc.run(prepared, progress))
        self.progress = progress
        return e

    def prepare_fails(self, files: dict[str, bytes | str], **opts: Any) -> InvalidParameter:
        d = Deferred.fromCoroutine(self.svc.prepare(make_tar(files), BuildOptions(**opts)))
        return self.failureResultOf(d, InvalidParameter).value  # type: ignore[no-any-return]  # trial's failureResultOf value is typed Any

    def config(self, image_id: str) -> dict[str, Any]:
        return self.images.images[image_id].config

    def file(self, image_id: str, path: str) -> str:
        with open(os.path.join(self.images.image_dir(image_id), path.lstrip("/"))) as f:
            return f.read()


class OutputTests(BuilderTestCase):
    """What the build prints, step by step."""

    def test_seed_flow_output(self) -> None:
        """Steps, ids, Running in/Removed lines, aux and the final lines match dockerd's shape."""
        res, text = self.build(
            {
                "Dockerfile": "FROM busybox\nCOPY index.html /www/\nRUN echo hi\n"
                'EXPOSE 80\nCMD ["httpd", "-f"]\n',
                "index.html": "<h1>hi</h1>",
            },
            tags=("my-image",),
        )
        lines = text.splitlines()
        base = self.images.tags["busybox:latest"]
        self.assertEqual(lines[0], "Step 1/5 : FROM busybox")
        self.assertEqual(lines[1], f" ---> {base[7:19]}")
        self.assertEqual(lines[2], "Step 2/5 : COPY index.html /www/")
        self.assertTrue(lines[3].startswith(" ---> ") and len(lines[3]) == 18)
        self.assertEqual(lines[4], "Step 3/5 : RUN echo hi")
        self.assertTrue(lines[5].startswith(" ---> Running in "))
        cid = lines[5].split()[-1]
        self.assertEqual(lines[6], "hi")
        self.assertEqual(lines[7], f" ---> Removed intermediate container {cid}")
        self.assertEqual(lines[9], "Step 4/5 : EXPOSE 80")
        self.assertTrue(lines[10].startswith(" ---> Running in "))
        self.assertTrue(lines[11].startswith(" ---> Removed intermediate container "))
        self.assertEqual(lines[-2], f"Successfully built {res.image_id[7:19]}")
        self.assertEqual(lines[-1], "Successfully tagged my-image:latest")
        self.assertEqual(self.progress.auxes, [res.image_id])
        self.assertEqual(self.images.tags["my-image:latest"], res.image_id)
        self.assertEqual(self.containers.created, {})  # intermediate containers removed
        cfg = self.config(res.image_id)["config"]
        self.assertEqual(cfg["Cmd"], ["httpd", "-f"])
        self.assertEqual(cfg["ExposedPorts"], {"80/tcp": {}})
        self.assertEqual(self.file(res.image_id, "/www/index.html"), "<h1>hi</h1>")

    def test_quiet(self) -> None:
        """C{-q}: only the image id is streamed (and the aux)."""
        res, text = self.build({"Dockerfile": "FROM busybox\nENV A=1\n"}, quiet=True)
        self.assertEqual(text, res.image_id + "\n")

    def test_quiet_failure_shows_the_output(self) -> None:
        """C{-q}: when the build fails, what it printed is streamed before the error."""
        self.build_fails({"Dockerfile": "FROM busybox\nENV A=1\nRUN exit 3\n"}, quiet=True)
        self.assertIn("Step 1/3 : FROM busybox\n", self.progress.text)
        self.assertIn("Step 3/3 : RUN exit 3\n", self.progress.text)

    def test_run_failure(self) -> None:
        """A failing RUN ends the build with dockerd's message and the exit code, tags nothing,
        and (without --force-rm) leaves the failed container."""
        err = self.build_fails({"Dockerfile": "FROM busybox\nRUN exit 3\n"}, tags=("bad",))
        self.assertEqual(err.message, "The command '/bin/sh -c exit 3' returned a non-zero code: 3")
        self.assertEqual(err.code, 3)
        self.assertNotIn("bad:latest", self.images.tags)
        self.assertEqual(len(self.containers.created), 1)

    def test_force_rm(self) -> None:
        """With --force-rm the failed container is removed too."""
        self.build_fails({"Dockerfile": "FROM busybox\nRUN exit 1\n"}, force_rm=True)
        self.assertEqual(self.containers.created, {})

    def test_no_rm_keeps_containers(self) -> None:
        """rm=0 keeps intermediate containers."""
        self.build({"Dockerfile": "FROM busybox\nRUN echo x\n"}, rm=False)
        self.assertEqual(len(self.containers.created), 1)

    def test_metadata_steps_commit_config_only(self) -> None:
        """A metadata-only step makes its image from the parent's layers and a new config
        (no writable layer, no container), with dockerd's container_config/container fields;
        with rm=false each gets a real (never started) container, as dockerd leaves them."""
        res, out = self.build({"Dockerfile": "FROM busybox\nENV A=1\nLABEL l=x\n"})
        self.assertEqual(self.images.meta_commits, 2)
        self.assertEqual(len(self.containers.created), 0)
        cfg = self.config(res.image_id)
        self.assertEqual(cfg["config"]["Labels"], {"l": "x"})  # the run config, in Go's full shape:
        self.assertEqual(cfg["config"]["Hostname"], "")
        top = self.images.tops[-1]
        self.assertEqual(top["container_config"]["Cmd"], ["/bin/sh", "-c", "#(nop) ", "LABEL l=x"])
        self.assertEqual(top["container_config"]["Hostname"], top["container"][:12])
        self.assertIn(f" ---> Running in {top['container'][:12]}\n", out)
        self.assertIn(f" ---> Removed intermediate container {top['container'][:12]}\n", out)
        self.build({"Dockerfile": "FROM busybox\nENV B=1\nLABEL m=x\n"}, rm=False)
        self.assertEqual(len(self.containers.created), 2)
        self.assertEqual(self.images.meta_commits, 2)

    def test_missing_base(self) -> None:
        """A base image that is not present (and no registry) is a clear error."""
        err = self.build_fails({"Dockerfile": "FROM nosuch:1\n"}, tags=("x",))
        self.assertIn("pull access denied for nosuch", err.message)
        self.assertNotIn("x:latest", self.images.tags)

    def test_unused_build_arg_warning(self) -> None:
        """Build args no ARG consumed are reported."""
        _, text = self.build(
            {"Dockerfile": "FROM busybox\nARG USED\n"}, build_args={"USED": "1", "UNUSED": "2"}
        )
        self.assertIn("[Warning] One or more build-args [UNUSED] were not consumed", text)


class CacheTests(BuilderTestCase):
    """The classic build cache."""

    FILES = {"Dockerfile": "FROM busybox\nCOPY a /a\nRUN echo x > /f\nENV K=v\n", "a": "1"}

    def test_second_build_uses_cache(self) -> None:
        """An unchanged rebuild reuses every step and gives the same image."""
        first, _ = self.build(dict(self.FILES))
        created = len(self.images.images)
        second, text = self.build(dict(self.FILES))
        self.assertEqual(second.image_id, first.image_id)
        self.assertEqual(text.count(" ---> Using cache"), 3)
        self.assertNotIn("Running in", text)
        self.assertEqual(len(self.images.images), created)

    def test_changed_file_busts_cache(self) -> None:
        """Changing a copied file rebuilds from that COPY on."""
        self.build(dict(self.FILES))
        files = dict(self.FILES, a="2")
        _, text = self.build(files)
        self.assertEqual(text.count(" ---> Using cache"), 0)

    def test_no_cache(self) -> None:
        """--no-cache rebuilds every step."""
        self.build(dict(self.FILES))
        _, text = self.build(dict(self.FILES), no_cache=True)
        self.assertNotIn("Using cache", text)

    def test_build_arg_changes_run_key(self) -> None:
        """A declared ARG's value is part of a RUN's cache key."""
        df = {"Dockerfile": "FROM busybox\nARG V\nRUN echo x > /f\n"}
        self.build(dict(df), build_args={"V": "1"})
        _, text = self.build(dict(df), build_args={"V": "2"})
        self.assertEqual(text.count("Using cache"), 1)  # the ARG step only

    def test_cache_from_limits_hits(self) -> None:
        """With --cache-from, only the named images' chains are cache sources."""
        first, _ = self.build(dict(self.FILES))
        _, text = self.build(dict(self.FILES), cache_from=("busybox",))
        self.assertNotIn("Using cache", text)
        self.images.tags["prev:latest"] = first.image_id
        _, text = self.build(dict(self.FILES), cache_from=("prev",))
        self.assertEqual(text.count("Using cache"), 3)


class InstructionTests(BuilderTestCase):
    """Each instruction's effect on the image."""

    def test_metadata(self) -> None:
        """ENV/LABEL/USER/WORKDIR/VOLUME/STOPSIGNAL/ENTRYPOINT/SHELL/HEALTHCHECK/ONBUILD."""
        res, _ = self.build(
            {
                "Dockerfile": (
                    'FROM busybox\nENV A=1 B="two words"\nENV C=${A}x\nLABEL l=$A\nUSER app\n'
                    "WORKDIR /srv\nWORKDIR sub\nVOLUME /data\nSTOPSIGNAL SIGINT\n"
                    'ENTRYPOINT ["/bin/sh"]\nSHELL ["/bin/sh", "-ec"]\n'
                    "HEALTHCHECK --interval=5s --retries=2 CMD true\nONBUILD RUN echo child\n"
                    "EXPOSE 80/udp 8000-8001\n"
                )
            },
            labels={"extra": "yes"},
        )
        cfg = self.config(res.image_id)["config"]
        env = dict(e.split("=", 1) for e in cfg["Env"])
        self.assertEqual(env["A"], "1")
        self.assertEqual(env["B"], "two words")
        self.assertEqual(env["C"], "1x")
        self.assertEqual(cfg["Labels"], {"l": "1", "extra": "yes"})
        self.assertEqual(cfg["User"], "app")
        self.assertEqual(cfg["WorkingDir"], "/srv/sub")
        self.assertEqual(cfg["Volumes"], {"/data": {}})
        self.assertEqual(cfg["StopSignal"], "SIGINT")
        self.assertEqual(cfg["Entrypoint"], ["/bin/sh"])
        self.assertIsNone(cfg["Cmd"])  # ENTRYPOINT clears the inherited CMD
        self.assertEqual(cfg["Shell"], ["/bin/sh", "-ec"])
        self.assertEqual(
            cfg["Healthcheck"],
            {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2},
        )
        self.assertEqual(cfg["OnBuild"], ["RUN echo child"])
        self.assertEqual(set(cfg["ExposedPorts"]), {"80/udp", "8000/tcp", "8001/tcp"})
        self.assertTrue(
            os.path.isdir(os.path.join(self.images.image_dir(res.image_id), "srv", "sub"))
        )
        hist = self.config(res.image_id)["history"]
        self.assertEqual(hist[-1]["created_by"], "/bin/sh -ec #(nop)  LABEL extra=yes")
        self.assertEqual(hist[-2]["created_by"], "/bin/sh -ec #(nop)  EXPOSE 80/udp 8000-8001")
        self.assertTrue(hist[-2]["empty_layer"])

    def test_run_env_and_args(self) -> None:
        """RUN sees ENV, declared ARGs (build-arg over default) and proxy args; ENV wins."""
        _, text = self.build(
            {"Dockerfile": ("FROM busybox\nARG A=def\nARG B=b\nENV B=env\nARG C\nRUN env\n")},
            build_args={"A": "given", "http_proxy": "http://p"},
        )
        self.assertIn("A=given\n", text)
        self.assertIn("B=env\n", text)
        self.assertNotIn("C=", text)
        self.assertIn("http_proxy=http://p\n", text)

    def test_meta_args_in_from(self) -> None:
        """Global ARGs expand in FROM; a stage imports one with a bare ARG."""
        res, _ = self.build(
            {"Dockerfile": ("ARG BASE=busybox\nARG V=3\nFROM ${BASE}\nARG V\nENV V=$V\n")}
        )
        self.assertIn("V=3", self.config(res.image_id)["config"]["Env"])

    def test_copy_chown_and_heredoc(self) -> None:
        """COPY --chown by name; a COPY heredoc makes a file, expanding variables."""
        res, _ = self.build(
            {
                "Dockerfile": (
                    "FROM busybox\nENV W=world\nCOPY --chown=app a /a\nCOPY <<EOF /h.txt\nhello $W\nEOF\n"
                ),
                "a": "A",
            }
        )
        st = os.stat(os.path.join(self.images.image_dir(res.image_id), "a"))
        if os.getuid() == 0:
            self.assertEqual((st.st_uid, st.st_gid), (1000, 1000))
        self.assertEqual(self.file(res.image_id, "/h.txt"), "hello world\n")

    def test_run_heredoc(self) -> None:
        """A RUN heredoc is the script run by the shell."""
        self.build({"Dockerfile": "FROM busybox\nRUN <<EOF\necho from-heredoc\nEOF\n"})
        self.assertIn("from-heredoc", self.progress.text)

    def test_multistage_and_target(self) -> None:
        """COPY --from a stage (by name and index); --target stops at that stage."""
        files = {
            "Dockerfile": (
                "FROM busybox AS build\nRUN echo built > /out\n"
                "FROM busybox AS other\nRUN echo other > /o\n"
                "FROM busybox\nCOPY --from=build /out /final\nCOPY --from=1 /o /o\n"
            )
        }
        res, text = self.build(dict(files))
        self.assertEqual(self.file(res.image_id, "/final"), "built\n")
        self.assertEqual(self.file(res.image_id, "/o"), "other\n")
        self.assertEqual(len(self.progress.auxes), 3)
        self.assertIn("Step 7/7", text)
        res2, text2 = self.build(dict(files), target="build")
        self.assertIn("Step 2/2", text2)
        self.assertEqual(self.file(res2.image_id, "/out"), "built\n")

    def test_stage_as_base(self) -> None:
        """FROM an earlier stage continues from its image."""
        res, _ = self.build({"Dockerfile": ("FROM busybox AS a\nENV X=1\nFROM a\nENV Y=2\n")})
        env = self.config(res.image_id)["config"]["Env"]
        self.assertIn("X=1", env)
        self.assertIn("Y=2", env)

    def test_onbuild_triggers_run_in_child(self) -> None:
        """A base image's ONBUILD triggers run first in a child build."""
        self.build({"Dockerfile": "FROM busybox\nONBUILD ENV FROMTRIGGER=1\n"}, tags=("parent",))
        res, text = self.build({"Dockerfile": "FROM parent\n"})
        self.assertIn("# Executing 1 build trigger\n", text)
        cfg = self.config(res.image_id)["config"]
        self.assertIn("FROMTRIGGER=1", cfg["Env"])
        self.assertIsNone(cfg["OnBuild"])

    def test_scratch(self) -> None:
        """FROM scratch with a COPY makes an image with only that file."""
        res, text = self.build({"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "A"})
        self.assertIn("Step 1/2 : FROM scratch\n ---> \n", text)
        self.assertEqual(os.listdir(self.images.image_dir(res.image_id)), ["a"])

    def test_add_url_loopback(self) -> None:
        """ADD from an http URL downloads the file (served on loopback)."""
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
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        url = f"http://127.0.0.1:{srv.server_address[1]}/dl/file.txt"
        res, _ = self.build({"Dockerfile": f"FROM busybox\nADD {url} /d/\n"})
        self.assertEqual(self.file(res.image_id, "/d/file.txt"), "remote-content")


class ErrorTests(BuilderTestCase):
    """Bad input gives clear errors."""

    def test_parse_error_before_stream(self) -> None:
        """A syntax error fails preparation with the line number."""
        err = self.prepare_fails({"Dockerfile": "FROM busybox\n\nFOOBAR bar\n"})
        self.assertEqual(str(err), "dockerfile parse error on line 3: unknown instruction: FOOBAR")

    def test_missing_dockerfile_and_empty(self) -> None:
        """A missing, an empty and a comment-only Dockerfile, worded as dockerd words them."""
        self.assertEqual(
            str(self.prepare_fails({"a": "1"})), "Cannot locate specified Dockerfile: Dockerfile"
        )
        self.assertEqual(
            str(self.prepare_fails({"Dockerfile": ""})),
            "the Dockerfile (Dockerfile) cannot be empty",
        )
        self.assertEqual(
            str(self.prepare_fails({"Dockerfile": "# only\n"})),
            "failed to parse Dockerfile: file with no instructions",
        )

    def test_line_parser_errors_name_the_file(self) -> None:
        """Errors of the line parser (ENV/LABEL pairs) name the Dockerfile, not the line;
        instruction errors (HEALTHCHECK durations) carry the line number."""
        err = self.prepare_fails({"Dockerfile": "FROM busybox\nENV ONLYKEY\n"})
        self.assertEqual(str(err), "failed to parse Dockerfile: ENV must have two arguments")
        err = self.prepare_fails({"Dockerfile": "FROM busybox\nHEALTHCHECK --interval=x CMD t\n"})
        self.assertEqual(str(err), 'dockerfile parse error on line 2: time: invalid duration "x"')
        err = self.prepare_fails({"Dockerfile": "RUN x\n"})
        self.assertEqual(str(err), "no build stage in current context")

    def test_unknown_target(self) -> None:
        """An unknown --target."""
        err = self.prepare_fails({"Dockerfile": "FROM busybox\n"}, target="nope")
        self.assertEqual(str(err), 'target stage "nope" could not be found')

    def test_squash_refused(self) -> None:
        """--squash is refused as dockerd does without experimental mode."""
        err = self.prepare_fails({"Dockerfile": "FROM busybox\n"}, squash=True)
        self.assertIn("squash is only supported with experimental mode", str(err))
        # dockerd squashes in experimental mode; pyd says it does not, rather than asking for it
        self.svc = BuildService(
            self.images,
            self.containers,
            InlineBlocking(),
            os.path.join(self.tmp, "builds"),
            Clock(),
            experimental=True,
        )
        err = self.prepare_fails({"Dockerfile": "FROM busybox\n"}, squash=True)
        self.assertEqual(str(err), "squash is not supported by pyd, in experimental mode too")

    def test_copy_outside_context(self) -> None:
        """COPY ../x and a missing source fail the build with dockerd's message."""
        err = self.build_fails({"Dockerfile": "FROM busybox\nCOPY ../etc/passwd /p\n"})
        self.assertIn("forbidden path outside the build context", err.message)
        err = self.build_fails({"Dockerfile": "FROM busybox\nCOPY nope /p\n"})
        self.assertIn("file not found in build context", err.message)

    def test_escaping_context_refused(self) -> None:
        """A context tar with an entry outside its root is refused before building."""
        err = self.prepare_fails({"Dockerfile": "FROM busybox\n", "../x": "1"})
        self.assertIn("outside of the context", str(err))

    def test_run_flag_errors(self) -> None:
        """A bad RUN --mount is a plain build error in BuildKit's words (issue 20: the flags
        themselves are supported, tests/unit/builder/test_builder_frontend.py)."""
        err = self.build_fails({"Dockerfile": "FROM busybox\nRUN --mount=type=nfs,target=/c x\n"})
        self.assertEqual(err.message, 'RUN: unsupported mount type "nfs"')

    def test_dockerignore_applied(self) -> None:
        """An excluded Dockerfile is removed from the context once read, as dockerd's classic
        builder does (the client filtered the other files itself)."""
        err = self.build_fails(
            {
                "Dockerfile": "FROM busybox\nCOPY Dockerfile /s\n",
                ".dockerignore": "*\n!secret\n",
                "secret": "x",
            }
        )
        self.assertIn("file not found in build context or excluded by .dockerignore", err.message)

    def test_outside_dockerfile_name(self) -> None:
        """The CLI's .dockerfile.<hex> (a Dockerfile from outside the context) is used and not
        left in the context."""
        name = ".dockerfile.0123456789abcdef0123"
        err = self.build_fails(
            {name: "FROM busybox\nCOPY . /ctx/\nRUN exit 9\n", "a": "1"}, dockerfile=name
        )
        self.assertEqual(err.code, 9)
        (img_id,) = [
            i
            for i, (p, k) in self.images.cache_keys.items()
            if k and "COPY" in json.dumps(self.images.images[i].config["history"][-1])
        ]
        self.assertEqual(os.listdir(os.path.join(self.images.image_dir(img_id), "ctx")), ["a"])


class CancelTests(BuilderTestCase):
    """A client that goes away stops the build."""

    def test_cancel_during_run(self) -> None:
        """Cancelled while a RUN runs: its container is removed, nothing is committed or tagged."""

        def run_and_disconnect(
            cmd: list[str], config: dict[str, Any], rootfs: str
        ) -> tuple[bytes, int]:
            self.progress.cancelled = True
            return b"partial\n", 0

        self.containers.run_fn = run_and_disconnect
        self.progress = FakeProgress()
        prepared = run_sync(
            self.svc.prepare(
                make_tar({"Dockerfile": "FROM busybox\nRUN sleep 100\nRUN echo never\n"}),
                BuildOptions(tags=("c",)),
            )
        )
        commits = self.images.commits
        e = self.assertRaises(BuildFailed, run_sync, self.svc.run(prepared, self.progress))
        self.assertEqual(e.message, "Build cancelled")
        self.assertEqual(self.containers.created, {})
        self.assertEqual(self.images.commits, commits)
        self.assertNotIn("c:latest", self.images.tags)


class DeferredCancelTests(BuilderTestCase):
    """The HTTP layer (Klein) cancels the build's Deferred when the client goes away: the
    step's container goes too, wherever the build was waiting (issue 18: an interrupted build
    left its container listed)."""

    def test_cancel_while_run_waits(self) -> None:
        """Cancelled while the RUN's container runs: it is removed, nothing is tagged."""
        from twisted.internet.defer import CancelledError

        waiting: list[Deferred[None]] = []
        containers = self.containers

        async def run(container_id: str, output: Any, cancelled: Any) -> int | None:
            d: Deferred[None] = Deferred()
            waiting.append(d)
            await d
            return 0

        containers.run = run  # type: ignore[method-assign]  # the test swaps the method for a scripted one
        progress = FakeProgress()
        prepared = run_sync(
            self.svc.prepare(
                make_tar({"Dockerfile": "FROM busybox\nRUN sleep 100\n"}),
                BuildOptions(tags=("c",)),
            )
        )
        d = Deferred.fromCoroutine(self.svc.run(prepared, progress))
        self.assertEqual(len(waiting), 1)
        self.assertEqual(len(containers.created), 1)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(containers.created, {})
        self.assertNotIn("c:latest", self.images.tags)

    def _cancel_during(self, method: str) -> None:
        """The client is cut off mid-RUN (the build sees its stream closed) and the HTTP
        layer's cancel lands while C{method} of the containers is waiting: the step's
        container still goes once the waiting ends."""
        from twisted.internet.defer import CancelledError

        containers = self.containers
        gate: Deferred[None] = Deferred()
        real = getattr(containers, method)

        async def slow(*args: Any) -> Any:
            await gate
            return await real(*args)

        setattr(containers, method, slow)
        progress = FakeProgress()
        if method == "remove":
            # the client is cut off while the RUN runs: the build removes the container
            async def run(container_id: str, output: Any, cancelled: Any) -> int | None:
                progress.cancelled = True
                return None

            containers.run = run  # type: ignore[method-assign]  # the test swaps the method for a scripted one
        prepared = run_sync(
            self.svc.prepare(
                make_tar({"Dockerfile": "FROM busybox\nRUN sleep 100\n"}),
                BuildOptions(tags=("c",)),
            )
        )
        d = Deferred.fromCoroutine(self.svc.run(prepared, progress))
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        gate.callback(None)
        self.assertEqual(containers.created, {})
        self.assertEqual(len(containers.removed), 1)
        self.assertNotIn("c:latest", self.images.tags)

    def test_cancel_during_the_removal(self) -> None:
        """The cancel lands while the cut-off build removes its step container (five stalled
        builds left their containers behind so): the removal still completes."""
        self._cancel_during("remove")

    def test_cancel_during_the_create(self) -> None:
        """The cancel lands while the step container is being created: it is removed once made."""
        self._cancel_during("create")


class ContextLimitTests(BuilderTestCase):
    """max-build-context-size (issue 18): a context that expands beyond it is refused before
    the entry that crosses it is written, and nothing of it is left."""

    def test_too_large_context_refused(self) -> None:
        """A 2 MiB file with a 1 MiB limit: 400 naming the limit; the build directory is gone."""
        self.svc.max_context_size = 1 << 20
        d = Deferred.fromCoroutine(
            self.svc.prepare(
                make_tar({"Dockerfile": "FROM busybox\n", "big": b"\0" * (2 << 20)}),
                BuildOptions(),
            )
        )
        f = self.failureResultOf(d, InvalidParameter)
        self.assertIn("maximum build context size of 1048576 bytes", f.value.message)
        self.assertEqual(os.listdir(os.path.join(self.tmp, "builds")), [])

    def test_context_under_the_limit(self) -> None:
        """Under the limit the build prepares as before."""
        self.svc.max_context_size = 1 << 20
        res, _ = self.build({"Dockerfile": "FROM busybox\n", "small": b"x" * 1000})
        self.assertTrue(res.image_id)


def _gzip_bomb(size: int, name: str = "zeros.bin") -> bytes:
    """A gzip'd tar holding one file of C{size} zero bytes (a few KiB compressed)."""
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w|") as tf:
        info = tarfile.TarInfo(name)
        info.size = size
        tf.addfile(info, _Zeros(size))
    return raw.getvalue()


class _Zeros:
    """A file object of C{n} zero bytes, without holding them."""

    def __init__(self, n: int) -> None:
        self.left = n

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


class BuildLimitTests(BuilderTestCase):
    """max-layer-size for ADD of a local archive, and the free-space reserve for the context
    upload and each step: refused with a message naming the rule, nothing left behind."""

    def test_add_archive_past_max_layer_size(self) -> None:
        """ADD of a 16 KiB gzip'd tar expanding to 8 MiB with a 1 MiB limit: the build fails
        naming the limit, no file is written, the step's writable layer is gone."""
        self.svc.max_layer_size = 1 << 20
        bomb = _gzip_bomb(8 << 20)
        self.assertLess(len(bomb), 64 << 10)
        err = self.build_fails(
            {"Dockerfile": "FROM busybox\nADD bomb.tar.gz /x/\n", "bomb.tar.gz": bomb}
        )
        self.assertIn(
            "the archive expands to more than the maximum layer size of 1048576 bytes "
            "(max-layer-size)",
            err.message,
        )
        self.assertEqual(self.images.layers, {})
        self.assertEqual(os.listdir(os.path.join(self.tmp, "store", "layers")), [])

    def test_add_archives_past_max_layer_size_together(self) -> None:
        """Two archives of one ADD, each under the 1 MiB limit and 1.25 MiB together: they land
        in one layer, so the step is refused naming the limit and leaves no layer."""
        self.svc.max_layer_size = 1 << 20
        err = self.build_fails(
            {
                "Dockerfile": "FROM busybox\nADD a.tar.gz b.tar.gz /x/\n",
                "a.tar.gz": _gzip_bomb(640 << 10, "a.bin"),
                "b.tar.gz": _gzip_bomb(640 << 10, "b.bin"),
            }
        )
        self.assertIn("maximum layer size of 1048576 bytes (max-layer-size)", err.message)
        self.assertEqual(self.images.layers, {})

    def test_add_archive_under_the_limit(self) -> None:
        """Under the limit the archive is unpacked as before."""
        self.svc.max_layer_size = 1 << 20
        res, _ = self.build(
            {"Dockerfile": "FROM busybox\nADD a.tar.gz /x/\n", "a.tar.gz": _gzip_bomb(1000)}
        )
        self.assertTrue(res.image_id)

    def test_context_below_the_reserve(self) -> None:
        """A reserve larger than the filesystem's free space: the context upload is refused
        with min-free-space named, and the build's scratch directory goes."""
        self.svc.keep_free = 1 << 62
        d = Deferred.fromCoroutine(
            self.svc.prepare(make_tar({"Dockerfile": "FROM busybox\n"}), BuildOptions())
        )
        f = self.failureResultOf(d)
        self.assertIn("not enough free space", str(f.value))
        self.assertIn("(min-free-space)", str(f.value))
        self.assertEqual(os.listdir(os.path.join(self.tmp, "builds")), [])

    def test_step_below_the_reserve(self) -> None:
        """The reserve is crossed after the upload: the next RUN stops before its container is
        made, with min-free-space named."""
        prepared = run_sync(
            self.svc.prepare(
                make_tar({"Dockerfile": "FROM busybox\nRUN echo hi\n"}), BuildOptions()
            )
        )
        self.svc.keep_free = 1 << 62
        e = self.assertRaises(BuildFailed, run_sync, self.svc.run(prepared, FakeProgress()))
        self.assertIn("not enough free space", e.message)
        self.assertEqual(self.containers.created, {})


class BuildMetricsTests(BuilderTestCase):
    """The builder's hooks for dockerd's builder_builds_triggered_total and
    builder_builds_failed_total: one start per build, one failure with moby's reason."""

    def setUp(self) -> None:
        super().setUp()
        self.counted: list[str | None] = []
        self.svc.on_build.append(self.counted.append)

    def test_success_counts_a_start_only(self) -> None:
        self.build({"Dockerfile": "FROM busybox\nENV A=1\n"})
        self.assertEqual(self.counted, [None])

    def test_failures_by_reason(self) -> None:
        """Each kind of failure is counted with the reason moby's builder gives it."""
        self.build_fails({"Dockerfile": "FROM busybox\nRUN exit 3\n"})
        self.prepare_fails({"Dockerfile": ""})
        self.prepare_fails({"Dockerfile": "FROM busybox\nFROB x\n"})
        self.prepare_fails({"Dockerfile": "FROM busybox AS a\n"}, target="nope")
        self.assertEqual(
            self.counted,
            [
                None, "error_processing_commands_error",
                None, "dockerfile_empty_error",
                None, "unknown_instruction_error",
                None, "build_target_not_reachable_error",
            ],
        )  # fmt: skip

    def test_cancelled_build_counts_build_canceled(self) -> None:
        """A client gone while a RUN runs: the build fails as cancelled and is counted so."""
        progress = FakeProgress()

        def run_and_disconnect(
            cmd: list[str], config: dict[str, Any], rootfs: str
        ) -> tuple[bytes, int]:
            progress.cancelled = True
            return b"", 0

        self.containers.run_fn = run_and_disconnect
        prepared = run_sync(
            self.svc.prepare(
                make_tar({"Dockerfile": "FROM busybox\nRUN sleep 100\n"}), BuildOptions()
            )
        )
        e = self.assertRaises(BuildFailed, run_sync, self.svc.run(prepared, progress))
        self.assertEqual(e.message, "Build cancelled")
        self.assertEqual(self.counted, [None, "build_canceled"])
