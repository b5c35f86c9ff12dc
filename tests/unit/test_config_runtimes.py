"""The runtime and container-default keys of daemon.json and their flags: runtimes
(--add-runtime), default-runtime, default-ulimits (--default-ulimit), default-shm-size,
cgroup-parent, init, init-path; refusals with dockerd's texts, and the runtime set resolved at
start (L{pyd.drivers.runtime.oci.RuntimeSet})."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from pyd import config as cfgmod
from pyd.config.runtimes import table
from pyd.drivers.runtime.oci import OciRuntime, RuntimeSet, RuntimeUnavailable
from tests.helpers.sync import run_sync

# The daemon.json files the tests write: one directory, removed when the test process ends.
_FILES = tempfile.mkdtemp(prefix="pyd-t-config-")
atexit.register(shutil.rmtree, _FILES, True)


def _file(content: object) -> str:
    fd, path = tempfile.mkstemp(suffix=".json", dir=_FILES)
    with os.fdopen(fd, "w") as f:
        json.dump(content, f)
    return path


def build(flags: dict[str, object] | None = None, file: object = None) -> cfgmod.DaemonConfig:
    if file is None:
        return cfgmod.build(flags or {}, "/nonexistent/daemon.json")
    return cfgmod.build(flags or {}, _file(file), file_required=True)


class RuntimesConfigTests(SynchronousTestCase):
    def test_file_and_flag_forms(self) -> None:
        """The runtimes object (path, runtimeArgs) and --add-runtime NAME=PATH (name lower-cased,
        as dockerd); a runtime named both ways is a conflict."""
        cfg = build(
            file={"runtimes": {"fast": {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}}}
        )
        self.assertEqual(
            cfg.runtimes, {"fast": {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}}
        )
        cfg = build({"runtimes": ["Fast=/usr/bin/crun", "other = /usr/sbin/runc"]})
        self.assertEqual(set(cfg.runtimes), {"fast", "other"})
        self.assertEqual(cfg.runtimes["other"]["path"], "/usr/sbin/runc")
        e = self.assertRaises(
            cfgmod.ConfigError,
            cfgmod.build,
            {"runtimes": ["a=/x"]},
            _file({"runtimes": {"b": {"path": "/y"}}}),
            True,
        )
        self.assertIn("specified both as a flag and in the configuration file: runtimes", str(e))

    def test_dockerd_refusals(self) -> None:
        """runc is reserved, a name twice, a missing path, path with runtimeType or options: the
        texts of moby's RuntimeOpt.Set and setupRuntimes."""
        cases = [
            ({"runtimes": ["runc=/x"]}, None, "runtime name 'runc' is reserved"),
            (None, {"runtimes": {"runc": {"path": "/x"}}}, "runtime name 'runc' is reserved"),
            ({"runtimes": ["a=/x", "A=/y"]}, None, "runtime 'a' was already defined"),
            ({"runtimes": ["nopath"]}, None, "invalid runtime argument: nopath"),
            ({"runtimes": ["a="]}, None, "invalid runtime argument: a="),
            (
                None,
                {"runtimes": {"a": {}}},
                "runtime a: either a runtimeType or a path must be configured",
            ),
            (
                None,
                {"runtimes": {"a": {"path": "/x", "runtimeType": "io.containerd.kata.v2"}}},
                "runtime a: cannot configure both path and runtimeType for the same runtime",
            ),
            (
                None,
                {"runtimes": {"a": {"path": "/x", "options": {"SystemdCgroup": True}}}},
                "runtime a: options cannot be used with a path runtime",
            ),
            ({"default-runtime": "nope"}, None, "specified default runtime 'nope' does not exist"),
        ]
        for flags, file, text in cases:
            e = self.assertRaises(cfgmod.ConfigError, build, flags, file)
            self.assertEqual(str(e), text)

    def test_pyd_refusals_say_why(self) -> None:
        """A containerd shim (runtimeType) and a runtimeArgs --root are refused naming why."""
        e = self.assertRaises(
            cfgmod.ConfigError,
            build,
            None,
            {"runtimes": {"k": {"runtimeType": "io.containerd.kata.v2"}}},
        )
        self.assertIn("names a containerd shim, which pyd cannot run", str(e))
        e = self.assertRaises(
            cfgmod.ConfigError,
            build,
            None,
            {"runtimes": {"k": {"path": "/x", "runtimeArgs": ["--root=/tmp/x"]}}},
        )
        self.assertIn("runtimeArgs may not set --root", str(e))

    def test_default_runtime(self) -> None:
        """crun by default; runc, io.containerd.runc.v2 and a configured name are accepted."""
        self.assertEqual(build().default_runtime, "crun")
        for name in ("runc", "io.containerd.runc.v2", "crun"):
            self.assertEqual(build({"default-runtime": name}).default_runtime, name)
        cfg = build(file={"default-runtime": "fast", "runtimes": {"fast": {"path": "/x"}}})
        self.assertEqual(cfg.default_runtime, "fast")


class RuntimeSetTests(SynchronousTestCase):
    def which(self, name: str) -> str | None:
        return {"crun": "/usr/bin/crun", "runc": "/usr/sbin/runc", "/opt/kr": "/opt/kr"}.get(name)

    def test_resolve(self) -> None:
        """Stock runtimes found on PATH, each with its own state root (crun's stays
        <exec-root>/crun; io.containerd.runc.v2 shares runc's); configured ones by path with
        their runtimeArgs; docker info shows the paths as configured."""
        configured = {"kr": {"path": "/opt/kr", "runtimeArgs": ["--debug"]}}
        rs = RuntimeSet.resolve(
            table(configured), frozenset(configured), "crun", "/run/x", self.which
        )
        self.assertEqual(rs.get(""), OciRuntime("crun", "/usr/bin/crun", "/run/x/crun"))
        self.assertEqual(
            rs.get("runc"), OciRuntime("runc", "/usr/sbin/runc", "/run/x/runtime-runc")
        )
        self.assertEqual(rs.get("io.containerd.runc.v2").root, "/run/x/runtime-runc")  # type: ignore[union-attr]  # the test configured this runtime: get() finds it
        kr = rs.get("kr")
        assert kr is not None
        self.assertEqual((kr.root, kr.args), ("/run/x/runtime-kr", ("--debug",)))
        self.assertEqual(
            kr.argv("state", "ID"),
            ["/opt/kr", "--debug", "--root", "/run/x/runtime-kr", "state", "ID"],
        )
        self.assertEqual(
            kr.conmon_args(),
            [
                "-r",
                "/opt/kr",
                "--runtime-arg",
                "--debug",
                "--runtime-arg",
                "--root",
                "--runtime-arg",
                "/run/x/runtime-kr",
            ],
        )
        self.assertEqual(rs.shown["runc"], ("runc", ()))
        self.assertEqual(rs.shown["kr"], ("/opt/kr", ("--debug",)))
        self.assertIsNone(rs.get("nope"))

    def test_missing_binaries(self) -> None:
        """A stock runtime not installed is left out; a configured one, or the default, stops
        the start."""
        rs = RuntimeSet.resolve(
            table({}), frozenset(), "crun", "/r", lambda n: None if n == "runc" else "/usr/bin/crun"
        )
        self.assertEqual(rs.names, ("crun",))
        configured = {"kr": {"path": "/opt/missing", "runtimeArgs": []}}
        e = self.assertRaises(
            RuntimeUnavailable,
            RuntimeSet.resolve,
            table(configured),
            frozenset(configured),
            "crun",
            "/r",
            self.which,
        )
        self.assertIn("runtime kr: /opt/missing is not an executable file", str(e))
        e = self.assertRaises(
            RuntimeUnavailable,
            RuntimeSet.resolve,
            table({}),
            frozenset(),
            "runc",
            "/r",
            lambda n: None,
        )
        self.assertIn("default runtime runc", str(e))


class ContainerDefaultsConfigTests(SynchronousTestCase):
    def test_default_ulimits(self) -> None:
        """dockerd's object and --default-ulimit NAME=SOFT[:HARD]; go-units' refusals."""
        cfg = build(
            file={"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 100, "Hard": 200}}}
        )
        self.assertEqual(cfg.default_ulimits, {"nofile": (100, 200)})
        cfg = build({"default-ulimits": ["nproc=50", "nofile=10:20"]})
        self.assertEqual(cfg.default_ulimits, {"nproc": (50, 50), "nofile": (10, 20)})
        e = self.assertRaises(cfgmod.ConfigError, build, {"default-ulimits": ["bogus=1:2"]})
        self.assertEqual(str(e), "invalid ulimit type: bogus")
        e = self.assertRaises(cfgmod.ConfigError, build, {"default-ulimits": ["nofile=3:2"]})
        self.assertEqual(
            str(e), "ulimit soft limit must be less than or equal to hard limit: 3 > 2"
        )

    def test_shm_cgroup_parent_init(self) -> None:
        """default-shm-size in bytes (binary units); cgroup-parent made absolute, .. refused;
        init and init-path taken."""
        self.assertEqual(build().default_shm_size, 64 << 20)
        self.assertEqual(build({"default-shm-size": "128M"}).default_shm_size, 128 << 20)
        self.assertRaises(cfgmod.ConfigError, build, {"default-shm-size": "0"})
        self.assertEqual(build({"cgroup-parent": "batch/jobs"}).cgroup_parent, "/batch/jobs")
        e = self.assertRaises(cfgmod.ConfigError, build, {"cgroup-parent": "/a/../../b"})
        self.assertIn("cgroup-parent", str(e))
        cfg = build(file={"init": True, "init-path": "/usr/bin/tini-static"})
        self.assertEqual((cfg.init, cfg.init_path), (True, "/usr/bin/tini-static"))

    def test_refused_say_why(self) -> None:
        """exec-opts native.cgroupdriver=systemd and userns-remap stop the start saying why."""
        e = self.assertRaises(
            cfgmod.ConfigError, build, {"exec-opts": ["native.cgroupdriver=systemd"]}
        )
        self.assertIn("needs systemd as PID 1", str(e))
        e = self.assertRaises(cfgmod.ConfigError, build, {"userns-remap": "default"})
        self.assertIn("does not remap containers into a user namespace", str(e))


class RuntimeMessageTests(SynchronousTestCase):
    def test_runc_messages_as_dockerd_words_them(self) -> None:
        """runc's logrus line and its 'runc create failed' are unwrapped; a command that cannot
        run is dockerd 28's text under either runtime, any other refusal names the runtime as
        dockerd's text does (runc create failed / crun)."""
        from pyd.drivers.runtime.conmon import strip_runtime_message
        from pyd.engine.containers.runconfig import start_error

        raw = (
            'time="2026-12-07T03:34:11Z" level=error msg="runc create failed: unable to start '
            'container process: exec: \\"/nope/x\\": stat /nope/x: no such file or directory"'
        )
        m = strip_runtime_message(raw)
        self.assertEqual(
            m,
            'unable to start container process: exec: "/nope/x": stat /nope/x: no such file or directory',
        )
        text, code = start_error(["/nope/x"], m, "runc create failed")
        dockerd28 = (
            "failed to create task for container: failed to create shim task: OCI runtime create "
            "failed: runc create failed: unable to start container process: error during "
            'container init: exec: "/nope/x": stat /nope/x: no such file or directory: unknown'
        )
        self.assertEqual((text, code), (dockerd28, 127))
        # crun's words for the same refusal give dockerd's text too; its other refusals are
        # its own, after its name.
        crun = "executable file `/nope/x` not found in $PATH: No such file or directory"
        self.assertEqual(start_error(["/nope/x"], crun, "crun"), (dockerd28, 127))
        self.assertEqual(
            start_error(["x"], "boom", "crun")[0],
            "failed to create task for container: failed to create shim task: OCI runtime create "
            "failed: crun: boom: unknown",
        )
        self.assertEqual(strip_runtime_message("crun: boom"), "boom")
        self.assertEqual(OciRuntime("x", "/usr/sbin/runc", "/r").label, "runc create failed")
        self.assertEqual(OciRuntime("x", "/usr/bin/crun", "/r").label, "crun")


class ComponentVersionTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """dockerd's parsing of the runtime's and tini's --version output."""
        from pyd.engine.components import parse_init_version, parse_runtime_version

        crun = "crun version 1.8.1\ncommit: f8a096be\nrundir: /run/crun\nspec: 1.0.0\n+SYSTEMD\n"
        self.assertEqual(parse_runtime_version(crun), ("1.8.1", "f8a096be"))
        runc = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n"
        self.assertEqual(parse_runtime_version(runc), ("1.1.5+ds1", "1.1.5+ds1-1+deb12u1"))
        self.assertEqual(
            parse_init_version("tini version 0.19.0 - git.de40ad0\n"), ("0.19.0", "de40ad0")
        )
        self.assertEqual(parse_init_version("tini version 0.19.0\n"), ("0.19.0", ""))

    def test_read_once(self) -> None:
        """Each binary runs once; one that fails is left out."""
        from twisted.internet.defer import Deferred, succeed

        from pyd.drivers.process import ProcessResult
        from pyd.engine.components import Component, ComponentVersions

        calls: list[list[str]] = []

        class Runner:
            def run(self, argv: list[str], **kw: object) -> Deferred[ProcessResult]:
                calls.append(list(argv))
                if argv[0] == "/usr/bin/crun":
                    return succeed(
                        ProcessResult(tuple(argv), 0, b"crun version 1.8.1\ncommit: abc\n", b"")
                    )
                return succeed(ProcessResult(tuple(argv), 1, b"", b"no"))

        v = ComponentVersions(Runner(), ("crun", "/usr/bin/crun"), "/usr/bin/tini-static")  # type: ignore[arg-type]
        for _ in range(2):
            got = run_sync(v.components())
        self.assertEqual(got.listed, (Component("crun", "1.8.1", "abc"),))
        self.assertEqual(len(calls), 2)


class RuntimeStatusTests(SynchronousTestCase):
    """docker info's Runtimes[name].status (dockerd 28, API 1.44+)."""

    def test_features_of_each_runtime(self) -> None:
        """`<path> features` of each runtime, compact JSON under the OCI key, read once per
        binary (runc and its containerd alias share it); a runtime without the command has no
        status, as in dockerd."""
        from twisted.internet.defer import Deferred, succeed

        from pyd.daemon.wiring import FEATURES_KEY, runtime_status
        from pyd.drivers.process import ProcessResult

        calls: list[list[str]] = []

        class Runner:
            def run(self, argv: list[str], **kw: object) -> Deferred[ProcessResult]:
                calls.append(list(argv))
                if argv[0] == "/usr/sbin/runc":
                    out = b'{\n  "ociVersionMin": "1.0.0",\n  "hooks": ["prestart"]\n}\n'
                    return succeed(ProcessResult(tuple(argv), 0, out, b""))
                return succeed(ProcessResult(tuple(argv), 1, b"", b"unknown command features"))

        rts = RuntimeSet(
            {
                "crun": OciRuntime("crun", "/usr/bin/crun", "/r/crun"),
                "runc": OciRuntime("runc", "/usr/sbin/runc", "/r/runc"),
                "io.containerd.runc.v2": OciRuntime("io.containerd.runc.v2", "/usr/sbin/runc", "/r/runc"),
            },
            "crun",
            {"crun": ("crun", ()), "runc": ("runc", ()), "io.containerd.runc.v2": ("runc", ())},
        )  # fmt: skip
        got = run_sync(runtime_status(Runner(), rts))  # type: ignore[arg-type]
        features = '{"ociVersionMin":"1.0.0","hooks":["prestart"]}'
        self.assertEqual(
            got,
            {"runc": {FEATURES_KEY: features}, "io.containerd.runc.v2": {FEATURES_KEY: features}},
        )
        self.assertEqual(sorted(c[0] for c in calls), ["/usr/bin/crun", "/usr/sbin/runc"])
