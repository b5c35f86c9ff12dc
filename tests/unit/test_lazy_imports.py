"""A daemon wired as `twistd pyd` wires it (the real drivers, before the reactor runs) has not
imported the packages it loads only on first use: each one costs resident memory for the
daemon's whole life (docs/performance.md, issue 21)."""

from __future__ import annotations

import tempfile
import unittest

from tests.helpers.pychild import run_python

SCRIPT = """
import sys

# what twistd imports before it runs the plugin (pdb, the plugin cache's trial entry...)
from twisted.scripts import twistd
list(twistd.ServerOptions().subCommands)
assert "pdb" in sys.modules and "twisted.trial.itrial" in sys.modules

from pyd.tap import lean_imports

lean_imports()  # as pyd.tap.makeService does
from twisted.internet import reactor

from pyd import config as cfgmod
from pyd.daemon.drivers import real_drivers
from pyd.daemon.wiring import build_service

root = sys.argv[1]
flags = {
    "data-root": root + "/data",
    "exec-root": root + "/exec",
    "pidfile": root + "/pyd.pid",
    "hosts": ["unix://" + root + "/pyd.sock"],
    "bridge": "none",
    "iptables": False,
    "ip-forward": False,
    "ip-masq": False,
}
config = cfgmod.build(flags, root + "/daemon.json", file_required=False)
service = build_service(config, reactor, real_drivers)
service.telemetry.observe_request("/v1.47/containers/json", "GET", 200, 0.001)
# a lazy module (pdb for twistd --debug) is registered but has not run
from pyd.core.lean import LazyModule
loaded = [m for m, mod in sys.modules.items() if mod is not None and not isinstance(mod, LazyModule)]
print(" ".join(sorted(loaded)))
import pyd.daemon.wiring
import sqlalchemy.sql.compiler
from twisted.python import usage
print(pyd.daemon.wiring.__doc__ is None, sqlalchemy.sql.compiler.SQLCompiler.__doc__ is None,
      twistd.__doc__ is None, usage.Options.__doc__ is None, usage.Options.getUsage.__doc__ is None,
      all(p[2] is None for p in usage.Options.getUsage.__code__.co_positions()))
# the first scrape loads the exposition and sees what was recorded before it
labels = {"route": "/containers/json", "method": "GET", "status": "200"}
print(service.telemetry.value("pyd_api_requests_total", labels), "prometheus_client" in sys.modules)
"""

HYPERLINK_SCRIPT = """
import sys
from twisted.scripts import twistd
from pyd.tap import lean_imports
lean_imports()
from pyd.api import base  # Klein, twisted.web's server
import klein._dihttp
from twisted.python import urlpath
before = "hyperlink" in sys.modules
made = klein._dihttp.DecodedURL.fromText("http://h/a?b=1")
import hyperlink
print(before, type(made) is hyperlink.DecodedURL, made.get("b"))
print(str(urlpath.URLPath.fromString("http://h/a/").child(b"c")), urlpath._URL is hyperlink.URL)
"""

HTML_SCRIPT = """
import sys
from twisted.scripts import twistd
assert "html.entities" in sys.modules  # twisted.python.compat's `from html import escape`
from pyd.tap import lean_imports
lean_imports()
import html
before = "html.entities" in sys.modules
text = html.unescape("&amp; &nbsp;&notit; &#x41;&eacute &NotANameAtAll;")
print(before, repr(text), "html.entities" in sys.modules)
"""

# Loaded on first use only: the metrics exposition, the embedded DNS resolver (a container on
# a user-defined network), Alembic (a schema behind head), the TLS stack, the ORM, werkzeug's
# development server and test client, Klein's forms, sessions, plating and requirer,
# unittest.mock, pyroute2 (not used: pyd.drivers.network.rtnl), hyperlink with idna (Klein's
# request-URL requirer, twisted.web's URLPath; pyd.tap.lean_imports), the distribution service with the registry API
# client and twisted.web's HTTP client protocol (the first pull), Perspective Broker (a stand-in
# while twisted.web.server is imported); and what twistd imported that the daemon never uses
# (pyd.tap._TWISTD_ONLY): pdb, the test framework, http.cookiejar, and urllib.request with
# http.client (xml.sax's URL sources, the builder's ADD of a URL), html.entities (html.unescape's
# table); and what SQLAlchemy imports
# for entry-point plugins and its asyncio SQLite driver.
LAZY = (
    "prometheus_client",
    "twisted.names",
    "pyd.drivers.network.dns",
    "alembic",
    "OpenSSL",
    "treq",
    "twisted.web.client",
    "sqlalchemy.orm",
    "werkzeug.serving",
    "werkzeug.test",
    "pdb",
    "bdb",
    "unittest.case",
    "unittest.main",
    "twisted.trial",
    "http.cookiejar",
    "importlib.metadata",
    "sqlalchemy.dialects.sqlite.aiosqlite",
    "urllib.request",
    "http.client",
    "email.parser",
    "klein._form",
    "klein._session",
    "klein._plating",
    "klein._requirer",
    "pyroute2",
    "unittest.mock",
    "hyperlink",
    "idna",
    "twisted.python.urlpath",
    "pyd.engine.distribution.service",
    "pyd.engine.distribution.pull",
    "pyd.drivers.registry.client",
    "twisted.web._newclient",
    "twisted.spread",
    "html.entities",
)
# Loaded at start (so that an empty or broken run of the script cannot pass).
EAGER = (
    "sqlalchemy",
    "klein._app",
    "werkzeug.routing",
    "pyd.api.root",
    "pyd.engine.containers",
    "pyd.daemon.tree",
)


class LazyImportTests(unittest.TestCase):
    def test_wired_daemon_has_not_loaded_the_lazy_packages(self) -> None:
        """After twistd's imports, lean_imports, build_service with the real drivers and one
        request counted, no module of a lazily loaded package is imported and the daemon's
        modules have no docstrings; reading a metric then loads prometheus_client."""
        with tempfile.TemporaryDirectory(prefix="pyd-t-lazy-") as root:
            r = run_python("-c", SCRIPT, root)
        self.assertEqual(r.returncode, 0, r.stderr)
        modules_line, docs_line, metric_line = r.stdout.splitlines()[-3:]
        modules = set(modules_line.split())
        for name in EAGER:
            self.assertIn(name, modules)
        for name in LAZY:
            loaded = sorted(m for m in modules if m == name or m.startswith(name + "."))
            self.assertEqual(loaded, [], name)
        self.assertEqual(metric_line, "1.0 True")
        # modules imported after lean_imports carry no docstrings, nor do twistd's own, whose
        # functions have lost their location columns too (pyd.core.lean_loaded)
        self.assertEqual(docs_line, "True True True True True True")

    def test_hyperlink_loads_when_a_url_is_made(self) -> None:
        """hyperlink is not imported by Klein and twisted.web's server; Klein's DecodedURL
        stand-in makes hyperlink's own, and twisted.web's URLPath works, loading it then."""
        r = run_python("-c", HYPERLINK_SCRIPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[-2:], ["False True ['1']", "http://h/a/c True"])

    def test_html_entities_load_when_unescape_needs_them(self) -> None:
        """html.entities, loaded by twistd's imports, is forgotten; html.unescape still decodes
        named references (loading it then) exactly as before."""
        r = run_python("-c", HTML_SCRIPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        import html

        expected = html.unescape("&amp; &nbsp;&notit; &#x41;&eacute &NotANameAtAll;")
        self.assertEqual(r.stdout.split("\n")[-2], f"False {expected!r} True")
