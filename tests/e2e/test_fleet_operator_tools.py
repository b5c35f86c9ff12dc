"""The multi-host tools operators use, against three pyd hosts (issue 19).

Three daemons, each in a network namespace of the test's own, serve mutual TLS with certificates
from `pyd tls`. From the root namespace:

- Ansible's community.docker collection (the `ansible` package of the test extra) deploys an app:
  an image loaded from a tar made offline, a network with a subnet, a volume and a container with
  some fifty options. The app answers on every host, and a second run reports changed=0; a second
  playbook reads the state back with docker_container_info and docker_host_info and prunes with
  docker_prune.
- docker-compose 1.29 (Debian's) brings a project up and down through a context made by
  `pyd hosts add`.
- `pyd fleet` shows rows with their host, runs exec and logs on every host, streams events until
  interrupted, and reports a hung host (SIGSTOPped daemon) and a dead one (nothing listening)
  without holding up the others; `pyd hosts ls --check` reports versions and certificate expiry.

The hosts and the deployment are shared by the whole module (daemon start-up is the slow part).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from pyd.core import certs
from tests.helpers.daemon import REPO, pyd_cli, wait_until
from tests.helpers.fleet import Fleet, docker_cli
from tests.helpers.images import busybox_image_tar
from tests.helpers.registry import Registry

pytestmark = pytest.mark.e2e

ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
APP_IMAGE = "pyd-t-fleet/app:1"
APP_PORT = 18080
HOSTS = ("h1", "h2", "h3")

# group/community.docker.docker: every module of the collection talks to the host's pyd daemon
# over mutual TLS with the operator's admin certificate.
_DEFAULTS = """\
  module_defaults:
    group/community.docker.docker:
      docker_host: "{{ docker_host }}"
      validate_certs: true
      ca_path: "{{ tls_dir }}/ca.pem"
      client_cert: "{{ tls_dir }}/cert.pem"
      client_key: "{{ tls_dir }}/key.pem"
"""

SITE = (
    """\
- name: deploy the app to every pyd host
  hosts: pyd
  gather_facts: false
"""
    + _DEFAULTS
    + """\
  tasks:
    - name: image from a tar made offline
      community.docker.docker_image:
        name: "{{ app_image }}"
        source: load
        load_path: "{{ image_tar }}"
    - name: network with a subnet
      community.docker.docker_network:
        name: appnet
        driver: bridge
        ipam_config:
          - subnet: 172.31.77.0/24
            gateway: 172.31.77.1
        labels:
          tier: app
    - name: volume
      community.docker.docker_volume:
        name: appdata
        labels:
          tier: app
    - name: container
      community.docker.docker_container:
        name: app
        image: "{{ app_image }}"
        entrypoint: []
        command:
          - sh
          - -c
          - >-
            mkdir -p /run/www && echo "hello from $APP_HOST" > /run/www/index.html &&
            echo "app on $APP_HOST ready" && exec httpd -f -p 8080 -h /run/www
        hostname: app
        domainname: example.test
        user: "0:0"
        groups: ["1000"]
        working_dir: /run
        env:
          APP_HOST: "{{ inventory_hostname }}"
          APP_MODE: production
        labels:
          app: web
          tier: front
        published_ports:
          - "18080:8080"
        exposed_ports: ["9090"]
        network_mode: appnet
        networks_cli_compatible: true
        networks:
          - name: appnet
            ipv4_address: 172.31.77.10
            aliases: [web, frontdoor]
        mac_address: "02:42:ac:1f:4d:99"
        dns_servers: [172.31.77.1]
        dns_search_domains: [example.test]
        dns_opts: ["ndots:2"]
        etc_hosts:
          db.internal: 172.31.77.20
        volumes:
          - appdata:/data
        mounts:
          - type: tmpfs
            target: /scratch
            tmpfs_size: 16m
        tmpfs:
          - /run:size=8m
        read_only: true
        restart_policy: on-failure
        restart_retries: 3
        init: true
        ulimits:
          - nofile:1024:2048
        sysctls:
          net.ipv4.ip_unprivileged_port_start: "0"
        healthcheck:
          test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8080/"]
          interval: 30s
          timeout: 5s
          retries: 3
          start_period: 5s
        log_driver: json-file
        log_options:
          max-size: 10m
          max-file: "3"
        stop_signal: SIGTERM
        stop_timeout: 5
        memory: 64M
        memory_reservation: 32M
        memory_swap: 128M
        cpu_shares: 512
        cpus: 0.5
        pids_limit: 100
        cap_drop: [NET_RAW]
        capabilities: [CHOWN]
        security_opts: ["no-new-privileges"]
        shm_size: 32M
        oom_score_adj: 100
        ipc_mode: private
        cgroupns_mode: private
        tty: false
        interactive: false
        state: started
"""
)

OPS = (
    """\
- name: read the state back, then prune
  hosts: pyd
  gather_facts: false
"""
    + _DEFAULTS
    + """\
  tasks:
    - community.docker.docker_container_info:
        name: app
      register: app
    - ansible.builtin.assert:
        that:
          - app.exists
          - app.container.State.Running
          - app.container.HostConfig.ReadonlyRootfs
          - app.container.HostConfig.Init
          - app.container.HostConfig.RestartPolicy.Name == 'on-failure'
          - app.container.HostConfig.RestartPolicy.MaximumRetryCount == 3
          - app.container.Config.MacAddress == '02:42:ac:1f:4d:99'
          - app.container.NetworkSettings.Networks.appnet.IPAddress == '172.31.77.10'
          - "'APP_HOST=' ~ inventory_hostname in app.container.Config.Env"
    - community.docker.docker_host_info:
        containers: true
        networks: true
        volumes: true
      register: host
    - ansible.builtin.assert:
        that:
          - host.host_info.ServerVersion == '28.2.2'
          - host.containers | length == 1
          - "'appnet' in host.networks | map(attribute='Name') | list"
          - "'appdata' in host.volumes | map(attribute='Name') | list"
    - name: a stopped container for docker_prune to find
      community.docker.docker_container:
        name: junk
        image: "{{ app_image }}"
        command: ["true"]
        state: present
      register: junk
    - community.docker.docker_prune:
        containers: true
      register: pruned
    - ansible.builtin.assert:
        that:
          - junk.container.Id in pruned.containers
          - app.container.Id not in pruned.containers
"""
)

RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


@attrs.frozen
class Deployment:
    """The fleet after the playbook ran twice: both runs' output and their recaps."""

    fleet: Fleet
    admin: Path
    registry: Registry
    runs: tuple[subprocess.CompletedProcess[str], ...]
    workdir: Path

    def cli(self, *args: str, check: bool = True, timeout: float = 90) -> Any:
        return pyd_cli(*args, env=self.fleet.env, check=check, timeout=timeout)


def recap(out: str) -> dict[str, dict[str, int]]:
    return {
        m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
        for m in RECAP.finditer(out)
    }


def tool_env() -> dict[str, str]:
    """The environment for tools on requests (Ansible's modules, docker-compose): without
    REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, which would override the CA they are given."""
    drop = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "DOCKER_HOST", "DOCKER_CONTEXT")
    return {k: v for k, v in os.environ.items() if k not in drop}


def ansible(workdir: Path, playbook: str) -> subprocess.CompletedProcess[str]:
    env = {
        **tool_env(),
        "ANSIBLE_HOME": str(workdir / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),
    }
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "inventory.yml", playbook],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Three hosts; the admin's contexts h1..h3 (label role=app); the playbook run twice."""
    base = tmp_path_factory.mktemp("fleet-ops")
    fleet = Fleet(base, openssl_host3=False, forwarding=True)
    # A registry on host 1's veth gateway (a root-namespace address the test made): every host
    # reaches it through its own gateway.
    registry = Registry(addr=fleet.nets[0].gateway)
    fleet.extra_args = ["--insecure-registry", registry.host]
    try:
        fleet.start()
        registry.start()
        admin = fleet.client("ops", "admin")
        for i, name in enumerate(HOSTS):
            pyd_cli(
                "hosts", "add", name, "--host", f"tcp://{fleet.nets[i].addr}:2376",
                "--tls-dir", str(admin), "--label", "role=app", "--description", f"host {i + 1}",
                env=fleet.env,
            )  # fmt: skip
        work = base / "ansible"
        work.mkdir()
        (work / "ansible.cfg").write_text("[defaults]\nforks = 3\n")
        tar = work / "app.tar"
        busybox_image_tar(
            tar,
            APP_IMAGE,
            extra_files={"/www/index.html": "hello from app\n"},
            config={
                "Cmd": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                "ExposedPorts": {"8080/tcp": {}},
            },
        )
        inventory = {
            "all": {
                "children": {
                    "pyd": {
                        "hosts": {
                            name: {"docker_host": f"tcp://{fleet.nets[i].addr}:2376"}
                            for i, name in enumerate(HOSTS)
                        }
                    }
                },
                "vars": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "tls_dir": str(admin),
                    "image_tar": str(tar),
                    "app_image": APP_IMAGE,
                },
            }
        }
        (work / "inventory.yml").write_text(json.dumps(inventory))  # JSON is YAML
        (work / "site.yml").write_text(SITE)
        (work / "ops.yml").write_text(OPS)
        first = ansible(work, "site.yml")
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
        second = ansible(work, "site.yml")
        yield Deployment(fleet, admin, registry, (first, second), work)
    finally:
        try:
            registry.stop()
        finally:
            fleet.cleanup()


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return str(r.read().decode())
    except OSError:
        return None


class AnsibleTests:
    """community.docker against three mutual-TLS pyd hosts."""

    def test_playbook_deploys_everywhere_and_is_idempotent(self, deployed: Deployment) -> None:
        """Every task changes something on the first run, the app answers on every host with
        its own greeting, and the second run reports changed=0 on every host."""
        first, second = (recap(r.stdout) for r in deployed.runs)
        assert set(first) == set(HOSTS), deployed.runs[0].stdout[-3000:]
        for h in HOSTS:
            assert first[h]["failed"] == 0 and first[h]["changed"] == 4, first
        assert deployed.runs[1].returncode == 0, deployed.runs[1].stdout[-6000:]
        assert {h: second[h]["changed"] for h in HOSTS} == dict.fromkeys(HOSTS, 0), deployed.runs[
            1
        ].stdout[-6000:]
        for i, h in enumerate(HOSTS):
            url = f"http://{deployed.fleet.nets[i].addr}:{APP_PORT}/"
            wait_until(lambda url=url: fetch(url) is not None)
            assert fetch(url) == f"hello from {h}\n"

    def test_info_modules_and_prune(self, deployed: Deployment) -> None:
        """docker_container_info reads back what was set, docker_host_info lists the objects,
        and docker_prune removes a stopped container and leaves the app running."""
        r = ansible(deployed.workdir, "ops.yml")
        assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
        assert all(v["failed"] == 0 for v in recap(r.stdout).values())
        assert set(recap(r.stdout)) == set(HOSTS)


class ComposeThroughContextTests:
    """docker-compose 1.29 on a remote pyd through a context made by `pyd hosts add`."""

    def test_up_serves_and_down_cleans(self, deployed: Deployment, tmp_path: Path) -> None:
        """up -d on h2 through --context: the service answers on h2's address; down -v removes
        its container, network and volume there."""
        project = "pydt" + uuid.uuid4().hex[:8]
        (tmp_path / "docker-compose.yml").write_text(
            f"""\
version: "3.8"
services:
  web:
    image: {APP_IMAGE}
    ports: ["18081:8080"]
    volumes: ["data:/data"]
volumes:
  data: {{}}
"""
        )
        env = {**tool_env(), **deployed.fleet.env, "COMPOSE_INTERACTIVE_NO_CLI": "1"}

        def compose(*args: str) -> subprocess.CompletedProcess[str]:
            r = subprocess.run(
                [COMPOSE, "--context", "h2", "-p", project, *args],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            assert r.returncode == 0, f"docker-compose {args}: {r.stdout}\n{r.stderr}"
            return r

        try:
            compose("up", "-d")
            url = f"http://{deployed.fleet.nets[1].addr}:18081/"
            wait_until(lambda: fetch(url) is not None)
            assert fetch(url) == "hello from app\n"
            assert f"{project}_web_1" in compose("ps").stdout
        finally:
            compose("down", "-v")
        ps = docker_cli(
            "--context", "h2", "ps", "-a", "--format", "{{.Names}}", env=deployed.fleet.env
        )
        assert project not in ps.stdout
        vols = docker_cli("--context", "h2", "volume", "ls", "-q", env=deployed.fleet.env)
        assert f"{project}_data" not in vols.stdout.split()


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class Streaming:
    """`pyd fleet --host 'h*' CMD... --format json` running in the background: read its rows
    until a condition holds, then Ctrl-C it (on leaving the block) and keep its exit status."""

    def __init__(self, deployed: Deployment, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyd.cli", "fleet", "--host", "h*", args[0],
             "--format", "json", *args[1:]],
            env={**os.environ, "PYTHONPATH": str(REPO), **deployed.fleet.env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.rows: list[dict[str, Any]] = []
        self.err = ""
        self.returncode: int | None = None
        out = self.proc.stdout
        threading.Thread(target=lambda: [self.lines.put(x) for x in out or []], daemon=True).start()

    def until(self, done: Any, timeout: float = 60) -> list[dict[str, Any]]:
        """Collect rows until C{done(rows)} (generous deadline: CI boxes are loaded)."""
        deadline = time.monotonic() + timeout
        while not done(self.rows):
            assert time.monotonic() < deadline, self.rows
            try:
                self.rows.append(json.loads(self.lines.get(timeout=1)))
            except queue.Empty:
                continue
        assert self.proc.poll() is None  # still streaming
        return self.rows

    def __enter__(self) -> Streaming:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
            _, self.err = self.proc.communicate(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode


class FleetTests:
    """`pyd fleet` and `pyd hosts` across the deployed hosts."""

    def test_ps_json_rows_carry_their_host(self, deployed: Deployment) -> None:
        """--host 'h*' ps --format json: one object per container with Host; --filter works."""
        r = deployed.cli("fleet", "--host", "h*", "ps", "--format", "json")
        rows = json_lines(r.stdout)
        assert sorted((row["Host"], row["Names"]) for row in rows) == [(h, "app") for h in HOSTS]
        assert all(row["State"] == "running" and row["Image"] == APP_IMAGE for row in rows)
        assert "3 hosts ok, 0 failed" in r.stderr
        r = deployed.cli("fleet", "--label", "role=app", "ps", "-a", "--filter", "name=nothing")
        assert r.stdout.splitlines() == [r.stdout.splitlines()[0]]  # the header only
        assert r.stdout.split()[:3] == ["HOST", "CONTAINER", "ID"]

    def test_exec_and_logs_reach_every_host(self, deployed: Deployment) -> None:
        """exec and logs print each host's lines prefixed with its host."""
        r = deployed.cli("fleet", "--host", "h*", "exec", "app", "cat", "/run/www/index.html")
        assert sorted(r.stdout.splitlines()) == [f"{h} | hello from {h}" for h in HOSTS]
        r = deployed.cli("fleet", "--host", "h*", "logs", "app", "--tail", "5")
        for h in HOSTS:
            assert f"{h} | app on {h} ready" in r.stdout.splitlines(), r.stdout
        r = deployed.cli(
            "fleet", "--host", "h1", "--host", "h2", "exec", "--format", "json",
            "app", "sh", "-c", "echo out; echo err >&2; exit 4", check=False,
        )  # fmt: skip
        assert r.returncode == 1
        rows = json_lines(r.stdout)
        for h in ("h1", "h2"):
            assert {"Host": h, "Stream": "stdout", "Line": "out"} in rows
            assert {"Host": h, "Stream": "stderr", "Line": "err"} in rows
            assert {"Host": h, "Error": "exit code 4"} in rows
        assert "0 hosts ok, 2 failed (h1, h2)" in r.stderr

    def test_run_and_rm_everywhere(self, deployed: Deployment) -> None:
        """run starts one container per host, rm -f removes them; a second rm fails per host."""
        deployed.cli(
            "fleet", "--host", "h*", "run", "--name", "pyd-t-tmp", APP_IMAGE, "sleep", "60"
        )
        r = deployed.cli("fleet", "--host", "h*", "rm", "-f", "pyd-t-tmp", "--format", "json")
        assert [row["Result"] for row in json_lines(r.stdout)] == ["removed"] * 3
        r = deployed.cli("fleet", "--host", "h*", "rm", "pyd-t-tmp", check=False)
        assert r.returncode == 1
        assert r.stdout.count("No such container: pyd-t-tmp") == 3, r.stdout
        assert "0 hosts ok, 3 failed" in r.stderr

    def test_pull_everywhere(self, deployed: Deployment) -> None:
        """pull on every host: the one that pushed is up to date, the others download; a tag
        that does not exist fails every host."""
        ref = f"{deployed.registry.host}/pyd-t/app:1"
        env = deployed.fleet.env
        assert docker_cli("--context", "h1", "tag", APP_IMAGE, ref, env=env).returncode == 0
        r = docker_cli("--context", "h1", "push", ref, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        r = deployed.cli(
            "fleet", "--host", "h*", "--timeout", "60", "pull", ref, "--format", "json"
        )
        rows = {row["Host"]: row for row in json_lines(r.stdout)}
        assert rows["h1"]["Status"] == f"Image is up to date for {ref}", rows
        for h in ("h2", "h3"):
            assert rows[h]["Status"] == f"Downloaded newer image for {ref}", rows
        r = deployed.cli("fleet", "--host", "h*", "pull", ref[:-1] + "nope", check=False)
        assert r.returncode == 1
        assert "0 hosts ok, 3 failed (h1, h2, h3)" in r.stderr
        assert r.stdout.count("error: ") == 3, r.stdout

    def test_events_stream_until_interrupted(self, deployed: Deployment) -> None:
        """events streams every host's events, one JSON line each with its host, until Ctrl-C;
        then the summary and exit status 0."""
        since = str(int(time.time()) - 1)
        deployed.cli("fleet", "--host", "h*", "exec", "app", "true")
        with Streaming(deployed, "events", "--since", since, "--filter", "event=exec_die") as s:
            events = s.until(lambda rows: {r["Host"] for r in rows} == set(HOSTS))
        assert {e["Action"] for e in events} == {"exec_die"}
        assert s.returncode == 0, s.err
        assert "3 hosts ok, 0 failed" in s.err

    def test_logs_follow_until_interrupted(self, deployed: Deployment) -> None:
        """logs -f prints what every host's container writes while it follows, until Ctrl-C."""
        with Streaming(deployed, "logs", "-f", "app") as s:
            s.until(lambda rows: {r["Host"] for r in rows if "ready" in r["Line"]} == set(HOSTS))
            deployed.cli(
                "fleet", "--host", "h*", "exec", "app", "sh", "-c", "echo mark >/proc/1/fd/1"
            )
            s.until(lambda rows: {r["Host"] for r in rows if r["Line"] == "mark"} == set(HOSTS))
        assert s.returncode == 0, s.err
        assert "3 hosts ok, 0 failed" in s.err

    def test_hosts_ls_and_check(self, deployed: Deployment) -> None:
        """ls lists `default` first like docker context ls; --check reports API version and the
        server and client certificates' expiry."""
        r = deployed.cli("hosts", "ls")
        names = [line.split()[0] for line in r.stdout.splitlines()[1:]]
        assert names[0] == "default" and set(HOSTS) <= set(names)
        r = deployed.cli("hosts", "ls", "--check", "--format", "json", check=False)
        rows = {row["Name"]: row for row in json_lines(r.stdout)}
        server = certs.load_cert(
            (deployed.fleet.base / "host1" / "tls" / "server-cert.pem").read_bytes()
        )
        client = certs.load_cert((deployed.admin / "cert.pem").read_bytes())
        for h in HOSTS:
            assert rows[h]["Reachable"] and rows[h]["APIVersion"] == "1.50", rows[h]
            assert rows[h]["ClientCertExpires"] == client.not_valid_after_utc.strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        assert rows["h1"]["ServerCertExpires"] == server.not_valid_after_utc.strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )


class HungAndDeadHostTests:
    """A hung host (its daemon stopped with SIGSTOP) and a dead one (nothing listens)."""

    def test_reported_without_holding_up_the_others(self, deployed: Deployment) -> None:
        """info, ps, events and hosts ls --check answer for the live hosts, report h3 as timed
        out and the dead host as refused, and exit 1 after the summary."""
        fleet = deployed.fleet
        pyd_cli(
            "hosts", "add", "hdead", "--host", f"tcp://{fleet.nets[2].gateway}:2399",
            "--tls-dir", str(deployed.admin), env=fleet.env,
        )  # fmt: skip
        hung = fleet.daemons[2].proc
        assert hung is not None
        hung.send_signal(signal.SIGSTOP)
        try:
            r = deployed.cli("fleet", "--host", "h*", "--timeout", "3", "info", check=False)
            assert r.returncode == 1
            rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
            assert "28.2.2" in rows["h1"] and "28.2.2" in rows["h2"], r.stdout
            assert "error: timed out" in rows["h3"], r.stdout
            assert "error: connection refused" in rows["hdead"], r.stdout
            assert "2 hosts ok, 2 failed (h3, hdead)" in r.stderr
            r = deployed.cli(
                "fleet", "--timeout", "3", "events", "--since", "1h", "--until", "0s",
                "--format", "json", check=False,
            )  # fmt: skip
            rows_ = json_lines(r.stdout)
            assert {"Host": "h3", "Error": "timed out"} in rows_
            assert {"Host": "hdead", "Error": "connection refused"} in rows_
            assert {row["Host"] for row in rows_ if "Action" in row} == {"h1", "h2"}
            r = deployed.cli("hosts", "ls", "--check", "--timeout", "3", check=False)
            assert r.returncode == 1
            check = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
            assert "timed out" in check["h3"] and "connection refused" in check["hdead"]
            assert "1.50" in check["h1"]
        finally:
            hung.send_signal(signal.SIGCONT)
            pyd_cli("hosts", "rm", "hdead", env=fleet.env, check=False)
        assert "28.2.2" in deployed.cli("fleet", "--host", "h3", "info").stdout
