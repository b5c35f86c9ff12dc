"""Create, update and connect bodies are typed at the engine's door (issue 18): a mistyped body is
dockerd's 400 and stores nothing, so `docker ps -a` keeps working; keys in another case mean what
they mean to dockerd, and the engine acts on them (a read-only root really is read-only)."""

from __future__ import annotations

import json

from tests.helpers.daemon import PydDaemon, unix_request
from tests.helpers.images import DEFAULT_TAG


def _post(pyd: PydDaemon, path: str, body: bytes) -> tuple[int, dict[str, object]]:
    status, _, raw = unix_request(pyd.sock, "POST", path, body)
    return status, (json.loads(raw) if raw.strip() else {})


def test_mistyped_create_bodies_are_400_and_store_nothing(pyd: PydDaemon) -> None:
    """{"Cmd": [["sh"]]} and friends: dockerd's 400 texts; `docker ps -a` still lists fine."""
    for body, msg in (
        (
            {"Image": "busybox", "Cmd": [["sh"]]},
            "invalid JSON: json: cannot unmarshal array into Go struct field "
            "CreateRequest.Cmd of type string",
        ),
        (
            {"Image": "busybox", "Entrypoint": [["x"], 1]},
            "invalid JSON: json: cannot unmarshal array into Go struct field "
            "CreateRequest.Entrypoint of type string",
        ),
        (
            {"Image": "busybox", "HostConfig": {"Memory": "64m"}},
            "invalid JSON: json: cannot unmarshal string into Go struct field "
            "HostConfig.HostConfig.Memory of type int64",
        ),
    ):
        status, answer = _post(pyd, "/v1.50/containers/create", json.dumps(body).encode())
        assert (status, answer) == (400, {"message": msg})
    r = pyd.docker("ps", "-a", "--format", "{{.ID}}")
    assert r.stdout.strip() == ""


def test_key_case_is_honoured(pyd: PydDaemon) -> None:
    """`readonlyrootfs` in lower case is ReadonlyRootfs to dockerd: inspect shows it and the
    container's root file system refuses a write."""
    body = json.dumps(
        {"image": DEFAULT_TAG, "cmd": ["touch", "/x"], "hostconfig": {"readonlyrootfs": True}}
    ).encode()
    status, answer = _post(pyd, "/v1.50/containers/create?name=ro-case", body)
    assert status == 201, answer
    r = pyd.docker("inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", "ro-case")
    assert r.stdout.strip() == "true"
    r = pyd.docker("start", "-a", "ro-case", check=False)
    assert "Read-only file system" in r.stdout + r.stderr
    r = pyd.docker("inspect", "-f", "{{.State.ExitCode}}", "ro-case")
    assert r.stdout.strip() == "1"


def test_mistyped_update_and_connect_are_400(pyd: PydDaemon) -> None:
    """`docker update` and `network connect` bodies are typed the same way (no 500)."""
    pyd.docker("create", "--name", "typed", DEFAULT_TAG, "true")
    status, answer = _post(pyd, "/v1.50/containers/typed/update", b'{"Memory": "1g"}')
    assert (status, answer) == (
        400,
        {
            "message": "invalid JSON: json: cannot unmarshal string into Go struct field "
            "UpdateConfig.Memory of type int64"
        },
    )
    status, answer = _post(
        pyd,
        "/v1.50/networks/bridge/connect",
        b'{"Container": "typed", "EndpointConfig": {"Aliases": "a"}}',
    )
    assert (status, answer) == (
        400,
        {
            "message": "invalid JSON: json: cannot unmarshal string into Go struct field "
            "EndpointSettings.EndpointConfig.Aliases of type []string"
        },
    )
    r = pyd.docker("inspect", "-f", "{{.HostConfig.Memory}}", "typed")
    assert r.stdout.strip() == "0"
