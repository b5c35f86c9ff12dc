"""dockerd 28's daemon.json keys: each honoured, accepted without effect, or refused naming why;
--validate; /etc/docker/daemon.json as the fallback file; the documented effect of every key."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from pyd import config as cfgmod

ROOT = Path(__file__).resolve().parents[2]
KEYS_FILE = ROOT / "tests" / "data" / "dockerd-28-daemon-json-keys.txt"


def dockerd_keys() -> list[str]:
    """dockerd 28's keys (nested ones as C{outer.key})."""
    lines = KEYS_FILE.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def doc_row(o: cfgmod.Option) -> str:
    """The row docs/configuration.md has for an option (the doc is checked against it)."""
    if o.flag is None:
        flag = "(file only)"
    else:
        flag = f"`--{o.flag}`" + (f" / `-{o.short}`" if o.short else "")
        if o.repeat:
            flag += " (repeatable)"
    default = json.dumps(list(o.default) if isinstance(o.default, tuple) else o.default)
    reload = "yes" if o.reload else "no"
    return f"| `{o.key}` | {flag} | `{default}` | {reload} | {o.effect} | {o.doc} |"


# The daemon.json files the tests write: one directory, removed when the test process ends.
_FILES = tempfile.mkdtemp(prefix="pyd-t-config-")
atexit.register(shutil.rmtree, _FILES, True)


def _file(content: object) -> str:
    fd, path = tempfile.mkstemp(suffix=".json", dir=_FILES)
    with os.fdopen(fd, "w") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))
    return path


# A daemon.json as found on dockerd hosts: every key here has a value pyd accepts.
STOCK = {
    "storage-driver": "overlay2",
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m", "max-file": "3"},
    "live-restore": True,
    "iptables": True,
    "ip-forward": True,
    "userland-proxy": False,
    "experimental": False,
    "exec-opts": ["native.cgroupdriver=cgroupfs"],
    "default-ulimits": {},
    "seccomp-profile": "builtin",
    "features": {"buildkit": True, "containerd-snapshotter": False},
    "containerd": "/run/containerd/containerd.sock",
    "default-address-pools": [{"base": "172.30.0.0/16", "size": 24}],
    "proxies": {"http-proxy": "http://user:pw@proxy.example:3128", "no-proxy": "localhost"},
    "registry-mirrors": [],
    "insecure-registries": ["registry.local:5000"],
    "metrics-addr": "127.0.0.1:9323",
    "max-concurrent-downloads": 10,
    "mtu": 0,
    "data-root": "",
    "log-level": "",
    "builder": {"gc": {"enabled": True, "defaultKeepStorage": "20GB"}},
}


class DockerdKeysTests(SynchronousTestCase):
    """Every key of dockerd 28's daemon.json has a known fate in pyd."""

    def test_every_dockerd_key_known(self) -> None:
        """The file's keys (from moby v28.5.2) are all options of pyd; none is unknown."""
        keys = dockerd_keys()
        self.assertGreater(len(keys), 80)  # the list really is dockerd's, not a stub
        for key in keys:
            self.assertIn(key.split(".")[-1], cfgmod.BY_KEY, key)

    def test_each_key_with_its_default_is_accepted(self) -> None:
        """A file giving each dockerd key its default value starts pyd (and names a notice for
        every key without effect)."""
        for key in dockerd_keys():
            name = key.split(".")[-1]
            o = cfgmod.BY_KEY[name]
            default = list(o.default) if isinstance(o.default, tuple) else o.default
            content = {key.split(".")[0]: {name: default}} if "." in key else {name: default}
            cfg = cfgmod.build({}, _file(content), file_required=True)
            notices = " ".join(cfg.notices)
            if o.inert:
                self.assertIn(name, notices, key)
            else:
                self.assertNotIn(name, notices, key)

    def test_refused_values_name_the_key_and_why(self) -> None:
        """A value pyd cannot honour stops the start naming the key, the value and the reason."""
        cases = {
            "storage-driver": "btrfs",
            "userns-remap": "default",
            "exec-opts": ["native.cgroupdriver=systemd"],
            "default-gateway-v6": "fd00::1",
            "selinux-enabled": True,
            "api-cors-header": "*",
            "log-format": "json",
            "builder": {"entitlements": {"security-insecure": "yes"}},
        }
        for key, value in cases.items():
            e = self.assertRaises(cfgmod.ConfigError, cfgmod.build, {}, _file({key: value}), True)
            self.assertIn(key, str(e))
            self.assertIn(cfgmod.BY_KEY[key].refuse, str(e))

    def test_builder_entitlements(self) -> None:
        """builder.entitlements (issue 20): security-insecure grants RUN --security=insecure,
        network-host=false refuses RUN --network=host; unknown entitlements are refused."""
        from pyd.config.dockerd import builder_allows_host_network, builder_allows_insecure

        cfg = cfgmod.build({}, _file(STOCK), file_required=True)
        self.assertFalse(builder_allows_insecure(cfg.builder))
        self.assertTrue(builder_allows_host_network(cfg.builder))
        ent = {"builder": {"entitlements": {"security-insecure": True, "network-host": False}}}
        cfg = cfgmod.build({}, _file(ent), file_required=True)
        self.assertTrue(builder_allows_insecure(cfg.builder))
        self.assertFalse(builder_allows_host_network(cfg.builder))
        bad = {"builder": {"entitlements": {"device": True}}}
        self.assertRaises(cfgmod.ConfigError, cfgmod.build, {}, _file(bad), True)

    def test_unknown_key_named(self) -> None:
        """A key dockerd does not know either is refused with dockerd's message naming it."""
        e = self.assertRaises(
            cfgmod.ConfigError, cfgmod.build, {}, _file({"storage-drivr": "x"}), True
        )
        self.assertEqual(
            str(e), "the following directives don't match any configuration option: storage-drivr"
        )
        e = self.assertRaises(
            cfgmod.ConfigError, cfgmod.build, {}, _file({"proxies": {"ftp-proxy": "x"}}), True
        )
        self.assertIn("ftp-proxy", str(e))

    def test_stock_file(self) -> None:
        """A stock dockerd file starts pyd; its values land in the configuration."""
        cfg = cfgmod.build({}, _file(STOCK), file_required=True)
        self.assertEqual(cfg.http_proxy, "http://user:pw@proxy.example:3128")
        self.assertEqual(cfg.no_proxy, "localhost")
        self.assertEqual(cfg.mtu, 1500)  # 0 = the default, as dockerd
        self.assertEqual(cfg.data_root, "/var/lib/pyd")  # "" = the default
        self.assertEqual(cfg.max_concurrent_downloads, 10)
        self.assertIn("storage-driver is accepted without effect", " ".join(cfg.notices))

    def test_proxy_both_ways(self) -> None:
        """A proxy in the proxies object and on its own is a conflict naming it."""
        path = _file({"http-proxy": "http://a:1", "proxies": {"http-proxy": "http://b:2"}})
        e = self.assertRaises(cfgmod.ConfigError, cfgmod.build, {}, path, True)
        self.assertIn("http-proxy", str(e))

    def test_conflict_masks_proxy_credentials(self) -> None:
        """A proxy given both ways is named with its credentials masked, as dockerd does."""
        path = _file({"proxies": {"https-proxy": "http://u:secret@p:1"}})
        e = self.assertRaises(
            cfgmod.ConfigError, cfgmod.build, {"https-proxy": "http://u:other@p:2"}, path, True
        )
        self.assertIn("https-proxy: (from flag: http://xxxxx:xxxxx@p:2", str(e))
        self.assertNotIn("secret", str(e))

    def test_byte_order_mark(self) -> None:
        """A UTF-8 byte order mark (Notepad) is allowed, as dockerd allows it."""
        fd, path = tempfile.mkstemp(suffix=".json", dir=_FILES)
        with os.fdopen(fd, "wb") as f:
            f.write(b'\xef\xbb\xbf{"debug": true}')
        self.assertTrue(cfgmod.build({}, path, True).debug)

    def test_dockerd_log_levels(self) -> None:
        """trace and panic (logrus levels dockerd takes) map to pyd's nearest."""
        self.assertEqual(cfgmod.build({"log-level": "trace"}).log_level, "debug")
        self.assertEqual(cfgmod.build({"log-level": "panic"}).log_level, "fatal")


class ConfigFileChoiceTests(SynchronousTestCase):
    """Which file is read."""

    def test_explicit_file_required(self) -> None:
        """--config-file names the file, and it must exist."""
        self.assertEqual(cfgmod.resolve_config_file("/x.json"), ("/x.json", True))

    def test_fallback_to_dockerd_file(self) -> None:
        """Without --config-file: pyd's file, else dockerd's when only that exists."""
        self.patch(cfgmod, "DEFAULT_CONFIG_FILE", "/nonexistent/pyd/daemon.json")
        self.patch(cfgmod, "DOCKERD_CONFIG_FILE", _file({}))
        self.assertEqual(cfgmod.resolve_config_file(None), (cfgmod.DOCKERD_CONFIG_FILE, False))
        self.patch(cfgmod, "DEFAULT_CONFIG_FILE", _file({}))
        self.assertEqual(cfgmod.resolve_config_file(None), (cfgmod.DEFAULT_CONFIG_FILE, False))

    def test_source_recorded(self) -> None:
        """The file read is recorded (logged at start); a missing default file is none."""
        path = _file({})
        self.assertEqual(cfgmod.build({}, path, False).config_source, path)
        self.assertEqual(cfgmod.build({}, "/nonexistent/daemon.json", False).config_source, "")


class ValidateTests(SynchronousTestCase):
    """twistd pyd --validate, as dockerd --validate."""

    def run_validate(self, content: object) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        twistd = str(Path(sys.executable).with_name("twistd"))
        return subprocess.run(
            [twistd, "pyd", "--validate", "--config-file", _file(content)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            cwd=tempfile.gettempdir(),
        )

    def test_ok(self) -> None:
        """A stock dockerd file: 'configuration OK', exit 0, nothing started."""
        r = self.run_validate(STOCK)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.strip().splitlines()[-1], "configuration OK")

    def test_unknown_key(self) -> None:
        """An unknown key: the error naming it, exit 1."""
        r = self.run_validate({"storage-drivr": "overlay2"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("don't match any configuration option: storage-drivr", r.stderr)
        self.assertNotIn("configuration OK", r.stderr)


class ConfigDocTableTests(SynchronousTestCase):
    """docs/configuration.md's table says, for every key, what pyd does with it."""

    def test_rows(self) -> None:
        """Each option's row (flag, default, reload, effect, meaning) is in the doc as the code
        has it."""
        doc = (ROOT / "docs" / "configuration.md").read_text()
        for o in cfgmod.OPTIONS:
            self.assertIn(doc_row(o), doc, f"docs/configuration.md: row of {o.key}")


if __name__ == "__main__":  # regenerate the table: python -m tests.unit.test_config_dockerd
    for opt in cfgmod.OPTIONS:
        print(doc_row(opt))
