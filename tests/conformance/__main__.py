"""`python -m tests.conformance record|compare|pyd [scenario ...]` or `coverage [--write]`.

C{record} starts a private dockerd (Debian's docker.io: own socket, data root and exec root,
no bridge, no iptables, no forwarding; stopped by its pid) and writes its transcripts to
tests/data/conformance/; C{compare} runs dockerd and pyd side by side; C{pyd} compares pyd with
the recorded files (what tests/e2e/test_conformance.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.conformance import coverage, proxy, runner, scenarios
from tests.helpers.build_golden import BASE, diff, load_base, start_hosts

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "data" / "conformance"


def golden_path(s: scenarios.Scenario) -> Path:
    """Where a scenario's recorded dockerd transcript lives."""
    return GOLDEN_DIR / f"{s.name}.txt"


def requests_path(s: scenarios.Scenario) -> Path:
    """Where the requests dockerd answered during a scenario's recording are listed."""
    return GOLDEN_DIR / f"{s.name}.requests"


def run(
    host: str, s: scenarios.Scenario, requests: list[str] | None = None, registry: str = ""
) -> str:
    """Reset C{host} and run C{s} there in a scratch directory. With C{requests}, the steps'
    requests (not the reset's or the clean-up's) are noted through a L{proxy.RecordingProxy}
    and appended to it as normalised JSON lines."""
    tmp = tempfile.mkdtemp(prefix="conform-", dir="/tmp")
    rec = None if requests is None else proxy.RecordingProxy(host, os.path.join(tmp, "p.sock"))
    try:
        runner.reset(host, tmp)
        if rec is None:
            return runner.run_scenario(host, s, tmp, registry=registry)
        assert requests is not None
        noted: list[dict[str, object]] = []
        rec.take()
        out = runner.run_scenario(rec.host, s, tmp, lambda: noted.extend(rec.take()), registry)
        norm = runner.Normaliser(tmp, s.keep)
        lines = [
            json.dumps({"method": e["method"], "path": e["target"], "status": e["status"],
                        "body": e["body"], **({"stream_error": True} if e.get("stream_error")
                                              else {})}, sort_keys=True)
            for e in noted
        ]  # fmt: skip
        requests += [norm(x.replace(registry, "<registry>") if registry else x) for x in lines]
        return out
    finally:
        if rec is not None:
            rec.close()
        shutil.rmtree(tmp, ignore_errors=True)


def start_registry(stops: list[Callable[[], None]]) -> str:
    """A registry without authentication on loopback (Debian's docker-registry), its stop
    appended to C{stops}; its address."""
    from tests.helpers.registry import Registry

    r = Registry(None).start()
    stops.append(r.stop)
    return r.host


def bridge_dockerd(stops: list[Callable[[], None]]) -> str:
    """A dockerd with its default bridge (C{--bip 172.31.77.1/24}) inside a network namespace
    made here; its stop and the namespace's removal are appended to C{stops}."""
    from bench.common import start_dockerd

    ns = f"conform-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    stops.append(lambda: subprocess.run(["ip", "netns", "del", ns], check=False))
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    d = start_dockerd(["--bip", "172.31.77.1/24"], netns=ns)
    if d is None:
        raise SystemExit("dockerd is not installed (apt-get install docker.io)")
    stops.append(d.stop)
    load_base(d.host)
    return d.host


def show_coverage(write: bool) -> int:
    """Print the coverage (and with C{write}, put its table into docs/api-coverage.md)."""
    report = coverage.compute()
    text = coverage.table(report)
    print(text)
    if report.unmatched:
        print("requests outside the served API:", ", ".join(report.unmatched))
    if write:
        coverage.DOC.write_text(coverage.document(coverage.DOC.read_text(), report))
        print(f"wrote {coverage.DOC}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Record or compare (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m tests.conformance")
    ap.add_argument("mode", choices=("record", "compare", "pyd", "coverage"))
    ap.add_argument("scenarios", nargs="*")
    ap.add_argument("--write", action="store_true", help="coverage: update docs/api-coverage.md")
    ap.add_argument("--dockerd-host", help="use a running dockerd instead of starting one")
    ap.add_argument("--pyd-host", help="use a running pyd instead of starting one")
    a = ap.parse_args(argv)
    if a.mode == "coverage":
        return show_coverage(a.write)
    stops: list[Callable[[], None]] = []
    try:
        started = start_hosts(
            a.mode in ("record", "compare"), a.mode in ("compare", "pyd"),
            a.dockerd_host, a.pyd_host, stops,
        )  # fmt: skip
        if started is None:
            return 2
        hosts = started
        for h in hosts.values():
            if runner.docker(h, "/tmp", ["image", "inspect", BASE]).returncode != 0:
                load_base(h)
        failed = 0
        bridged: str | None = None
        registry = ""
        for s in scenarios.each(a.scenarios):
            targets = dict(hosts)
            if s.bridge and "dockerd" in targets and not a.dockerd_host:
                bridged = bridged or bridge_dockerd(stops)
                targets["dockerd"] = bridged
            if a.mode == "record":
                requests: list[str] = []
                GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
                registry = registry or (start_registry(stops) if s.registry else "")
                golden_path(s).write_text(run(targets["dockerd"], s, requests, registry))
                requests_path(s).write_text("".join(line + "\n" for line in requests))
                print(f"wrote {golden_path(s)} and {requests_path(s)}")
                continue
            registry = registry or (start_registry(stops) if s.registry else "")
            got = {name: run(h, s, registry=registry) for name, h in targets.items()}
            expected = runner.apply_newer_dockerd(
                got["dockerd"] if "dockerd" in got else golden_path(s).read_text()
            )
            d = diff(expected, got["pyd"], f"/{s.name}")
            print(f"== {s.name}: {'same' if not d else 'DIFFERS'}")
            if d:
                failed += 1
                print(d)
        return 1 if failed else 0
    finally:
        for stop in reversed(stops):
            stop()


if __name__ == "__main__":
    sys.exit(main())
