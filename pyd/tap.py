"""twistd plugin options and service factory (layer: tap, the composition root's front door)."""

from __future__ import annotations

import sys
from typing import Any, cast

from twisted.application.service import IService
from twisted.python import usage

from pyd.core import lean_attrs

# before pyd's first attrs class (the options' and create-spec records, imported next)
lean_attrs.share_field_tuples()

from pyd import config as cfgmod  # noqa: E402
from pyd.core.seams import IDaemonReactor  # noqa: E402


def _make_repeat_handler(key: str) -> Any:
    def handler(self: Options, value: str) -> None:
        self.given.setdefault(key, []).append(value)

    handler.__doc__ = cfgmod.BY_KEY[key].doc + " (repeatable)"
    return handler


def _options_class() -> type[usage.Options]:
    params: list[list[Any]] = [
        [
            "config-file",
            None,
            None,
            "daemon.json path (default /etc/pyd/daemon.json, else /etc/docker/daemon.json)",
        ]
    ]
    flags: list[list[Any]] = [
        ["validate", None, "Validate the flags and daemon.json, print the result and exit"]
    ]
    handlers: dict[str, Any] = {}
    for o in cfgmod.OPTIONS:
        if o.flag is None:
            continue
        if o.repeat:
            handlers["opt_" + o.flag.replace("-", "_")] = _make_repeat_handler(o.key)
            if o.short:
                handlers["opt_" + o.short] = handlers["opt_" + o.flag.replace("-", "_")]
        elif o.is_flag:
            flags.append([o.flag, o.short, o.doc])
        else:
            params.append([o.flag, o.short, None, f"{o.doc} (default {o.default!r})"])
    ns: dict[str, Any] = {"optParameters": params, "optFlags": flags, **handlers}
    return type("OptionsBase", (usage.Options,), ns)


class Options(_options_class()):  # type: ignore[misc]  # base class built at runtime from the option table
    """C{twistd pyd} flags: dockerd's names, plus pyd's own where dockerd has none."""

    synopsis = "[options]"
    longdesc = "pyd: a container engine daemon speaking the Docker Engine API."

    def __init__(self) -> None:
        super().__init__()
        self.given: dict[str, Any] = {}
        self.config: cfgmod.DaemonConfig | None = None

    def postOptions(self) -> None:
        """Merge flags with daemon.json and validate; errors become UsageError."""
        flags: dict[str, Any] = dict(self.given)
        for o in cfgmod.OPTIONS:
            if o.flag is None or o.repeat:
                continue
            value = self.get(o.flag)
            if o.is_flag:
                if value:
                    flags[o.key] = True
            elif value is not None:
                flags[o.key] = value
        path, required = cfgmod.resolve_config_file(self.get("config-file"))
        self.flags = flags
        self.config_path = path
        self.config_required = required
        try:
            self.config = cfgmod.build(flags, path, file_required=required)
        except cfgmod.ConfigError as e:
            if self.get("validate"):
                # As dockerd --validate: the errors, exit status 1, no usage text.
                sys.stderr.write(f"{e}\n")
                raise SystemExit(1) from e
            raise usage.UsageError(str(e)) from e
        if self.get("validate"):
            for notice in self.config.notices:
                sys.stderr.write(f"notice: {notice}\n")
            sys.stderr.write("configuration OK\n")
            raise SystemExit(0)


def lean_imports() -> None:
    """What the daemon's imports leave out until first use (before anything imports the
    reactor, endpoints or Klein): the TLS stack (L{pyd.core.tlsstack}), werkzeug's
    development server and test client, Klein's forms, sessions, plating and requirer,
    Perspective Broker under twisted.web's server and hyperlink under Klein and twisted.web
    (L{pyd.core.lean}); and the docstrings and location columns of what twistd imported
    (L{pyd.core.lean_loaded})."""
    from pyd.core import lean, lean_loaded, tlsstack

    lean.drop_docstrings()
    # what twistd imported and the daemon keeps loses its docstrings and columns too (~1.3
    # MiB), before the daemon's own imports, which reuse what it frees
    lean_loaded.strip_loaded()
    tlsstack.defer()
    lean.bare_package("werkzeug")
    lean.bare_package("klein")  # pyd.api.base imports Klein from klein._app
    # SQLAlchemy imports these at import time for what pyd never asks of it: dialects and
    # plugins registered as entry points, the asyncio SQLite driver (~0.8 MB).
    lean.lazy_module("importlib.metadata")
    lean.lazy_module("sqlalchemy.dialects.sqlite.aiosqlite")
    _forget_twistd_imports()
    # Imported again by twisted.web's xml.sax (for a template's URL sources) and the
    # builder (ADD of a URL), used only when that runs: with http.client and the email parser
    # (~0.6 MB).
    lean.lazy_module("urllib.request")
    lean.lazy_module("http.client")
    # twisted.web's redirect resources build URLs with twisted.python.urlpath, which imports
    # hyperlink with idna (~0.7 MiB with their tables): run when a URLPath is first made
    lean.lazy_module("twisted.python.urlpath")
    # twisted.web.server's Request subclasses Perspective Broker's Copyable and names its
    # ViewPoint, for PB to send a request to another process (twisted.web.distrib): that is
    # all of PB with jelly, banana, decimal and twisted.cred (~0.5 MB), which pyd never speaks.
    # The server is imported against a stand-in; a later `import twisted.spread.pb` is real.
    with lean.stand_in(
        "twisted.spread.pb",
        Copyable=type("Copyable", (), {"__module__": "twisted.spread.pb"}),
        ViewPoint=type("ViewPoint", (), {"__module__": "twisted.spread.pb"}),
    ):
        import twisted.web.server  # noqa: F401  # the point of the stand-in
    # Klein's resource imports its request-URL requirer (klein._dihttp), whose module takes
    # hyperlink's DecodedURL for a route that asks for the URL, which pyd's never do: Klein is
    # imported against a stand-in that makes the real one when called
    with lean.stand_in("hyperlink", DecodedURL=_DecodedURLOnFirstUse):
        import klein._app  # noqa: F401  # the point of the stand-in


class _DecodedURLOnFirstUse:
    """Stands for C{hyperlink.DecodedURL} in Klein's modules: what it makes is the real one."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        from hyperlink import DecodedURL

        return DecodedURL(*args, **kwargs)

    @staticmethod
    def fromText(*args: Any, **kwargs: Any) -> Any:  # hyperlink's name
        from hyperlink import DecodedURL

        return DecodedURL.fromText(*args, **kwargs)


# What twistd imported before the plugin ran that the daemon does not use at start: pdb (for
# --debug), the test framework with argparse (the plugin cache's trial entry imports it when
# unpickled), and http.cookiejar (twisted.python.compat's deprecated cookielib name) with
# urllib.request, http.client and the email parser (lazy modules from lean_imports on: only
# fetching a URL runs them); html.entities as well (L{_forget_html_entities}).
_TWISTD_ONLY = (
    "pdb", "bdb", "cmd", "code", "codeop", "unittest", "argparse", "twisted.trial",
    "twisted.plugins.twisted_trial", "http.cookiejar", "urllib.request", "urllib.response",
    "http.client", "email.parser", "email.feedparser",
)  # fmt: skip


def _forget_twistd_imports() -> None:
    """Drop L{_TWISTD_ONLY}; the names twistd's modules keep for them become lazy modules,
    loaded if ever used (C{twistd --debug} runs pdb)."""
    from pyd.core import lean

    app: Any = sys.modules.get("twisted.application.app")
    compat: Any = sys.modules.get("twisted.python.compat")  # a deprecation proxy
    lean.forget(_TWISTD_ONLY)
    if app is not None:
        app.pdb = lean.lazy_module("pdb")
    if compat is not None:
        compat.cookielib = lean.lazy_module("http.cookiejar")
    lean.bare_package("unittest")
    _forget_html_entities()


def _forget_html_entities() -> None:
    """twisted.python.compat's C{from html import escape} loaded C{html.entities} (~0.3 MB of
    tables), whose one user in the daemon is C{html.unescape}, through the module's C{_html5}:
    the module is forgotten and that name becomes a mapping that imports it when first read."""
    import html
    import importlib

    from pyd.core import lean

    entities: Any = sys.modules.get("html.entities")
    if entities is None or getattr(html, "_html5", None) is not entities.html5:
        return  # not loaded, or not the stdlib this was written for: leave it
    lean.forget(("html.entities",))
    html._html5 = lean.LazyMapping(  # type: ignore[attr-defined]  # html's private name
        lambda: importlib.import_module("html.entities").html5
    )


def makeService(options: Options, reactor: IDaemonReactor | None = None) -> IService:
    """Build the daemon's service tree from parsed options."""
    lean_imports()
    from pyd.daemon.drivers import real_drivers
    from pyd.daemon.wiring import build_service

    if reactor is None:
        from twisted.internet import reactor as _reactor

        # The installed (epoll) reactor provides every slice IDaemonReactor names; Twisted's
        # own annotation of the global only lists the interfaces all reactors share.
        reactor = cast(IDaemonReactor, _reactor)
        from pyd.daemon.dispatch import lean_dispatch

        lean_dispatch(reactor)  # socket events without the legacy logging context
    assert options.config is not None
    flags, path, required = options.flags, options.config_path, options.config_required
    # SIGHUP re-reads daemon.json with the same command-line flags.
    return build_service(
        options.config,
        reactor,
        real_drivers,
        config_loader=lambda: cfgmod.build(flags, path, file_required=required),
    )
