"""`python -m tests.conformance record|compare|pyd [scenario ...]`.

C{record} starts a private dockerd (Debian's docker.io: own socket, data root and exec root,
no bridge, no iptables, no forwarding; stopped by its pid) and writes its transcripts to
tests/data/conformance/; C{compare} runs dockerd and pyd side by side; C{pyd} compares pyd with
the recorded files (what tests/e2e/test_conformance.py does).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.conformance import runner, scenarios
from tests.helpers.build_golden import BASE, diff, load_base, start_hosts

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "data" / "conformance"


def golden_path(s: scenarios.Scenario) -> Path:
    """Where a scenario's recorded dockerd transcript lives."""
    return GOLDEN_DIR / f"{s.name}.txt"


def run(host: str, s: scenarios.Scenario) -> str:
    """Reset C{host} and run C{s} there in a scratch directory."""
    tmp = tempfile.mkdtemp(prefix="conform-", dir="/tmp")
    try:
        runner.reset(host, tmp)
        return runner.run_scenario(host, s, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Record or compare (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m tests.conformance")
    ap.add_argument("mode", choices=("record", "compare", "pyd"))
    ap.add_argument("scenarios", nargs="*")
    ap.add_argument("--dockerd-host", help="use a running dockerd instead of starting one")
    ap.add_argument("--pyd-host", help="use a running pyd instead of starting one")
    a = ap.parse_args(argv)
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
        for s in scenarios.each(a.scenarios):
            targets = dict(hosts)
            if s.bridge and "dockerd" in targets and not a.dockerd_host:
                bridged = bridged or bridge_dockerd(stops)
                targets["dockerd"] = bridged
            got = {name: run(h, s) for name, h in targets.items()}
            if a.mode == "record":
                GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
                golden_path(s).write_text(got["dockerd"])
                print(f"wrote {golden_path(s)}")
                continue
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
