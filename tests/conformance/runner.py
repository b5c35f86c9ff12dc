"""Running a conformance scenario against one daemon and normalising what a client saw.

The transcript of a scenario is plain text, one block per step:

    $ docker kill conf-k            (a CLI step: its stdout, stderr and exit status)
    > POST /containers/nope/kill    (an API step: its status and the JSON body, or a view of it)
    @wait conf-r {{.State.Restarting}} = true   (a wait: prints only whether it was reached)

CLI output is shown with C{\\r} made visible (a TTY's line ends are part of what a client sees).
Ids become C{<id N>} (numbered by first appearance), times C{<time>}, IPv4/IPv6 addresses are
kept only where the scenario fixed them (L{Normaliser} replaces the others by C{<addr>}).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from tests.conformance.steps import Api, Cli, Scenario, Step, Wait
from tests.helpers.build_golden import Normaliser as _IdNormaliser
from tests.helpers.daemon import DOCKER

# Where a current dockerd (28.x) answers otherwise than the recorded 20.10, pyd follows the
# current one: (pattern, replacement, why) applied (multi-line) to the golden before comparing.
_RM = "stop the container before removing or force remove"
NEWER_DOCKERD: tuple[tuple[str, str, str], ...] = (
    (
        r"Cannot kill container: (\S+): ",
        r"cannot kill container: \1: ",
        "moby >= 23 api/server/router/container/container_routes.go postContainersKill wraps "
        "every kill error with 'cannot kill container: <name>: '",
    ),
    (
        r'(> POST /containers/([^/\s]+)/kill\?signal=\S*\n< 400\n)\{"message": "Invalid signal: ',
        r'\1{"message": "cannot kill container: \2: invalid signal: ',
        "moby >= 23 parses the signal in daemon/kill.go ContainerKill (moby/sys/signal's "
        "'invalid signal: X'), so the route's wrap applies",
    ),
    (
        r"\bContainer (<id \d+>) is not running",
        r"container \1 is not running",
        "moby 28 container/container.go GetRunningTask and daemon/errors.go errNotRunning "
        "(kill, top, pause, exec) say 'container <id> is not running'",
    ),
    (
        r"(\$ docker rm (\S+)\n\[stdout\]\n\n\[stderr\]\nError response from daemon: )"
        r"You cannot remove a (\w+) container <id \d+>\. Stop the container before attempting "
        r"removal or force remove",
        rf'\1cannot remove container "/\2": container is \3: {_RM}',
        "moby 28 daemon/delete.go: ContainerRm wraps cleanupContainer's "
        "'container is <state>: ...' in 'cannot remove container %q: '",
    ),
    (
        r'(> DELETE /containers/([^?\s]+)\n< 409\n\{"message": ")You cannot remove a (\w+) '
        r"container <id \d+>\. Stop the container before attempting removal or force remove",
        rf'\1cannot remove container \\"/\2\\": container is \3: {_RM}',
        "as above, through the API",
    ),
    (
        r'(> POST /(?:containers|exec)/\S+/resize\S*\n< 400\n)\{"message": "strconv\.Atoi: '
        r'parsing (\\"[^"\\]*\\"): invalid syntax"\}',
        r'\1{"message": "invalid resize height \2: invalid syntax"}',
        "moby 28 api/server/router/container/container_routes.go postContainersResize "
        "(httputils.Uint32Value, height first): 'invalid resize height \"x\": invalid syntax'",
    ),
    (
        r'"Config cannot be empty in order to create a container"',
        r'"config cannot be empty in order to create a container"',
        "moby 28 runconfig/errors.go ErrEmptyConfig",
    ),
    (
        r"no such image: (\S+): No such image: ",
        r"No such image: ",
        "moby 28 image inspect returns daemon/images/image.go ErrImageDoesNotExist unwrapped",
    ),
    (
        r'("Aliases":\[[^\]]*?),?"<id \d+>"\]',
        r"\1]",
        "API >= 1.45 (docs/api/version-history.md v1.45): Aliases no longer holds the short "
        "container id (DNSNames does)",
    ),
    (
        r'(\.Aliases": \[[^\]]*?)(?:, )?"<id \d+>"\]',
        r"\1]",
        "as above, in a step's view of the inspect fields",
    ),
    (
        r"(?<!for container: )failed to create shim task: OCI runtime create failed: ",
        r"failed to create task for container: failed to create shim task: OCI runtime create "
        r"failed: ",
        "moby >= 23 libcontainerd/remote/client.go NewTask wraps containerd's error in "
        "'failed to create task for container'",
    ),
    (
        r"runc create failed: unable to start container process: exec: ",
        r"runc create failed: unable to start container process: error during container init: "
        r"exec: ",
        "runc >= 1.2 (dockerd 28's packages bundle runc 1.2/1.3) libcontainer/process_linux.go "
        "initProcess.start wraps every init error in 'error during container init' (runc 1.1 "
        "only before the process ran)",
    ),
)

NEWER_DOCKERD += (
    (
        r"failed to reach build target (\S+) in Dockerfile",
        r'target stage \\"\1\\" could not be found',
        "moby v28 builder/dockerfile/builder.go build: an unknown target is InvalidParameter "
        "'target stage %q could not be found'",
    ),
    (
        r"Maximum supported API version is 1\.41",
        "Maximum supported API version is 1.50",
        "pyd serves API 1.50 as dockerd 28.3 does (api/common.go DefaultVersion)",
    ),
)

_LINK_PORTS = "moby v28.2.2 daemon/links/links.go ToEnv: TCP ports first (withTCPPriority), "
NEWER_DOCKERD += (
    (
        r"^WEB_PORT=udp://<addr>:53$",
        r"WEB_PORT=tcp://<addr>:80",
        _LINK_PORTS + "so the first port (ALIAS_PORT) of 80/tcp, 81/tcp, 53/udp is 80/tcp",
    ),
    (
        r"^(WEB_PORT_80_TCP_ADDR=<addr>)\n(WEB_PORT_80_TCP_PORT=80)\n(WEB_PORT_80_TCP_PROTO=tcp)$",
        r"\1\nWEB_PORT_80_TCP_END=tcp://<addr>:81\n\2\nWEB_PORT_80_TCP_PORT_END=81\n"
        r"WEB_PORT_80_TCP_PORT_START=80\n\3\nWEB_PORT_80_TCP_START=tcp://<addr>:80",
        _LINK_PORTS + "and two consecutive ports are a range (20.10 wanted three)",
    ),
)

_V28_TYPES = "moby v28 api/types renamed the struct the body decodes into: "
NEWER_DOCKERD += (
    (
        r'< [45]00\n\{"message": "json: cannot unmarshal (?!\S+ into Go struct field AuthConfig\.)',
        r'< 400\n{"message": "invalid JSON: json: cannot unmarshal ',
        "moby v28 api/server/httputils/httputils.go ReadJSON and runconfig/config.go loadJSON: a "
        "body that does not decode is an InvalidParameter 'invalid JSON: <decoder error>' "
        "(20.10 passed the decoder's error on as it was, a 500 for create, update and commit)",
    ),
    (r"Go struct field ContainerConfigWrapper\.", "Go struct field CreateRequest.",
     _V28_TYPES + "container.CreateRequest (ContainerConfigWrapper before v26)"),
    (r"Go struct field ExecConfig\.", "Go struct field ExecOptions.",
     _V28_TYPES + "container.ExecOptions (types.ExecConfig before v26)"),
    (r"Go struct field ExecStartCheck\.", "Go struct field ExecStartOptions.",
     _V28_TYPES + "container.ExecStartOptions (types.ExecStartCheck before v26)"),
    (r"Go struct field NetworkCreateRequest\.", "Go struct field CreateRequest.",
     _V28_TYPES + "network.CreateRequest (types.NetworkCreateRequest before v26)"),
    (r"Go struct field NetworkConnect\.", "Go struct field ConnectOptions.",
     _V28_TYPES + "network.ConnectOptions (types.NetworkConnect before v26)"),
    (r"Go struct field NetworkDisconnect\.", "Go struct field DisconnectOptions.",
     _V28_TYPES + "network.DisconnectOptions (types.NetworkDisconnect before v26)"),
    (r"Go struct field VolumeCreateBody\.", "Go struct field CreateOptions.",
     _V28_TYPES + "volume.CreateOptions (volume.VolumeCreateBody before v23)"),
    (r"of type container\.HealthConfig\b", "of type v1.HealthcheckConfig",
     "moby v28 api/types/container/config.go: HealthConfig is an alias of "
     "github.com/moby/docker-image-spec/specs-go/v1 HealthcheckConfig"),
    (r"\bInvalid filter '", "invalid filter '",
     "moby v28 api/types/filters/errors.go invalidFilter.Error: 'invalid filter ...'"),
    (
        r"(> POST /containers/\S+/wait\?condition=((?!not-running|next-exit|removed)[^&\s]+)\n)"
        r"< 200\n[^\n]*",
        r'\1< 400\n{"message": "invalid condition: \\"\2\\""}',
        "moby v28 api/server/router/container/container_routes.go postContainersWait refuses an "
        "unknown condition (InvalidParameter 'invalid condition: %q'); 20.10 ignored it",
    ),
    (
        r"\binvalid restart policy '(\w+)'",
        r"invalid restart policy: unknown policy '\1'; use one of 'no', 'always', 'on-failure', "
        r"or 'unless-stopped'",
        "moby v28 api/types/container/hostconfig.go ValidateRestartPolicy",
    ),
    (
        r"(> POST /images/\S+/tag\?repo=([^&\s]+)\S*\n)< [45]00\n(\{\"message\": \"invalid "
        r"reference format: repository name) must be lowercase",
        r"\1< 400\n\3 (\2) must be lowercase",
        "moby v28 postImagesTag parses repo with github.com/distribution/reference "
        "ParseNormalizedNamed (an InvalidParameter), whose error names the repository",
    ),
)  # fmt: skip

_QOS = "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"
NEWER_DOCKERD += (
    (
        r'(> POST /containers/create\S* \{[^\n]*"Image": "[^"]*", "MacAddress": "[^"]+"[^\n]*\n'
        r'< 201\n\{"Id": "<id \d+>", "Warnings": )\[\]',
        r'\1["The container-wide MacAddress field is now deprecated. It should be specified in '
        r'EndpointsConfig instead."]',
        "moby v28 api/server/router/container/container_routes.go handleMACAddressBC: from API "
        "1.44 the container-wide MacAddress moves to the main network's endpoint with a warning "
        "(daemon/inspect.go still shows it in Config)",
    ),
    (
        r'< 500\n\{"message": "Invalid QoS settings: linux does not support configuration of '
        r'maximum (?:bandwidth|IOPs)"\}',
        '< 400\n{"message": "' + _QOS + '"}',
        "moby v28 has no runconfig/hostconfig_unix.go validateResources any more: "
        "daemon/daemon_unix.go verifyPlatformContainerResources refuses, an InvalidParameter "
        "(daemon/create.go)",
    ),
    (
        r'"HostConfig\.KernelMemoryTCP": 0\b',
        '"HostConfig.KernelMemoryTCP": null',
        "moby v28 api/types/container/hostconfig.go: KernelMemoryTCP is omitempty",
    ),
    (
        r'(> GET /images/\S+/json\n< 200\n\{[^\n]*)"Config\.MacAddress": "[^"]*", '
        r'"Config\.NetworkDisabled": true',
        r'\1"Config.MacAddress": null, "Config.NetworkDisabled": null',
        "moby v28 image inspect's Config is docker-image-spec's DockerOCIImageConfig "
        "(api/types/image/image_inspect.go), which has neither field",
    ),
    (
        r"(> GET /(?:events|images/search)\?\S*filters=(?!%7B)[^&\s]*\S*\n)< 500\n"
        r'\{"message": "invalid character [^\n]*',
        r'\1< 400\n{"message": "invalid filter"}',
        "moby v28 api/types/filters/parse.go FromJSON: a filters value that decodes in neither "
        "form is invalidFilter{} (an InvalidParameter, 'invalid filter')",
    ),
)

# API 1.42 to 1.50 (the api_newer scenario): what 20.10 ignored and moby 28 decodes.
_PARSE_X = "failed to parse platform: invalid character 'x' looking for beginning of value"
_ARM64 = "platform=%7B%22os%22%3A%22linux%22%2C%22architecture%22%3A%22arm64%22%7D"
_NO_SWARM = (
    r'This node is not a swarm manager. Use \\"docker swarm init\\" or \\"docker swarm join\\" '
    r"to connect this node to swarm and try again."
)
_V28_ROUTES = "moby v28 api/server/router/image/image_routes.go "
NEWER_DOCKERD += (
    (
        r"(> GET /images/search\?\S*filters=%7B%22is-automated%22%3A%5B%22true%22%5D%7D\S*\n)"
        r"< 500\n\{\"message\": \"invalid registry endpoint [^\n]*",
        r"\1< 200\n[]",
        "moby v28 registry/search.go Search: is-automated=true (deprecated) yields no results, "
        "answered before the registry is asked",
    ),
    (
        r"(> (?:GET|POST|DELETE) /images/\S*[?&]platforms?=x(?:&\S*)?(?: <tar[^\n]*)?"
        r"(?: \[[^\n]*\])?\n)< \d+\n(?:\{\"message\": [^\n]*\}|\(not json\)[^\n]*"
        r"(?:\n\{\"errorDetail\"[^\n]*)?)$",
        r'\1< 400\n{"message": "' + _PARSE_X + '"}',
        _V28_ROUTES + "(inspect 1.49, history, save, load 1.48, push 1.46, delete 1.50): "
        "httputils.DecodePlatform's 'failed to parse platform: <json error>'",
    ),
    (
        r"(> GET /images/\S*[?&]platform=x\S*\n)< 200\n\(body not compared\)",
        r"\1< 400\n(body not compared)",
        "as above, for a save (its success is a tar, not compared)",
    ),
    (
        r"(> GET /images/(\S+?)/(?:json|history)\?" + _ARM64 + r"\n)< 200\n\{\"message\": null\}",
        r'\1< 404\n{"message": "image with reference \2 was found but its platform '
        r'(linux/amd64) does not match the specified platform (linux/arm64)"}',
        "moby v28 daemon/images/image.go GetImage: an image of another platform is NotFound",
    ),
    (
        r"(> GET /images/\S+/json\?manifests=1&platform=[^\s&]+\n)< 200\n\{\"message\": null\}",
        r'\1< 400\n{"message": "conflicting options: manifests and platform options cannot '
        r'both be set"}',
        _V28_ROUTES + "getImagesByName",
    ),
    (
        r"(> DELETE /images/\S+\?platforms=[^\s&]+&platforms=[^\s&]+\n)< 404\n\{[^\n]*",
        r'\1< 400\n{"message": "multiple platforms are not supported"}',
        "moby v28 daemon/images/image_delete.go ImageDelete, before the image is looked up",
    ),
    (
        r"(> POST /images/([^/\s]+)/push\?tag=([^&\s]+)&platform=%7B\S*(?: \[[^\n]*\])?\n)"
        r"< 200\n\(not json\) \{\"status\":\"The push refers to repository[^\n]*\n"
        r"\{\"errorDetail\":\{\"message\":\"An image does not exist locally[^\n]*",
        r'\1< 404\n{"message": "No such image: \2:\3"}',
        "moby v28 daemon/images/image_push.go PushImage: with a platform the local image is "
        "looked up first (GetImage), before the stream starts",
    ),
    (
        r"(> GET /system/df\?type=(\w+)\n)< 200\n\{\"message\": null\}",
        r'\1< 400\n{"message": "unknown object type: \2"}',
        "moby v28 api/server/router/system/system_routes.go getDiskUsage (API 1.42)",
    ),
    (
        r"(> POST /build/prune\?(reserved-space|max-used-space|min-free-space)=([^&\s]+)\n)"
        r"< 200\n\{\"message\": null\}",
        r'\1< 400\n{"message": "\2 is in bytes and expects an integer, got \3: strconv.Atoi: '
        r'parsing \\"\3\\": invalid syntax"}',
        "moby v28 api/server/router/build/build_routes.go postPrune (API 1.48)",
    ),
    (
        r"(> PUT /volumes/\S+ [^\n]*\n)< 404\n\{\"message\": \"page not found\"\}",
        r'\1< 503\n{"message": "volume update only valid for cluster volumes, but swarm is '
        r'unavailable"}',
        "moby v28 api/server/router/volume/volume_routes.go putVolumesUpdate (API 1.42), outside "
        "a swarm",
    ),
    (
        r"(> POST /containers/create\?name=(\S+) \{[^\n]*\"Annotations\": (\{[^}\n]*\})[^\n]*\n"
        r"< 201\n[^\n]*\n> GET /containers/\2/json\n< 200\n)\{\"HostConfig\.Annotations\": null\}",
        r'\1{"HostConfig.Annotations": \3}',
        "moby v28 api/types/container/hostconfig.go Annotations (API 1.43): stored and shown",
    ),
    (
        r"(> POST /volumes/create \{\"ClusterVolumeSpec\": \{[^\n]*\n)< 201\n\{\"message\": null\}",
        r'\1< 503\n{"message": "' + _NO_SWARM + '"}',
        "moby v28 volume_routes.go postVolumesCreate (API 1.42): a cluster volume outside a "
        "swarm is daemon/cluster's errNoSwarm",
    ),
    (
        r"(> POST /volumes/create \{\"ClusterVolumeSpec\": \"x\"[^\n]*\n)< 201\n\{\"message\": null\}",
        r'\1< 400\n{"message": "invalid JSON: json: cannot unmarshal string into Go struct field '
        r'CreateOptions.ClusterVolumeSpec of type volume.ClusterVolumeSpec"}',
        "moby v28 volume.CreateOptions.ClusterVolumeSpec (API 1.42), decoded by ReadJSON",
    ),
    (
        r"(> POST /containers/\S+/exec \{[^\n]*\"ConsoleSize\": \"x\"[^\n]*\n)< 201\n"
        r"\{\"message\": null\}",
        r'\1< 400\n{"message": "invalid JSON: json: cannot unmarshal string into Go struct field '
        r'ExecOptions.ConsoleSize of type [2]uint"}',
        "moby v28 container.ExecOptions.ConsoleSize (API 1.42)",
    ),
    (
        r"(> POST /containers/create\S* \{[^\n]*\"Annotations\": \"x\"[^\n]*\n)< 201\n"
        r"\{\"message\": null\}",
        r'\1< 400\n{"message": "invalid JSON: json: cannot unmarshal string into Go struct field '
        r'HostConfig.HostConfig.Annotations of type map[string]string"}',
        "moby v28 container.HostConfig.Annotations (API 1.43)",
    ),
    (
        r"(> POST /networks/create \{\"EnableIPv4\": \"x\"[^\n]*\n)< 201\n\{\"message\": null\}",
        r'\1< 400\n{"message": "invalid JSON: json: cannot unmarshal string into Go struct field '
        r'CreateRequest.EnableIPv4 of type bool"}',
        "moby v28 network.CreateRequest.EnableIPv4 (API 1.47)",
    ),
)

_MASKED_20 = (
    '"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", '
    '"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"'
)
_MASKED_28 = (
    '"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", '
    '"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", '
    '"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"'
)
NEWER_DOCKERD += (
    (
        r'("HostConfig\.<keys>": \[[^\]\n]*)"KernelMemory", "KernelMemoryTCP", ',
        r"\1",
        "moby v28 api/types/container/hostconfig.go: KernelMemory and KernelMemoryTCP are "
        "omitempty",
    ),
    (
        r'"HostConfig\.KernelMemory": 0\b',
        '"HostConfig.KernelMemory": null',
        "as above, in a step's view",
    ),
    (
        r'"HostConfig\.MaskedPaths": \[' + re.escape(_MASKED_20) + r"\]",
        '"HostConfig.MaskedPaths": [' + _MASKED_28 + "]",
        "moby v28 oci/defaults.go defaultLinuxMaskedPaths adds /proc/interrupts and "
        "/sys/devices/virtual/powercap (GHSA-6fw5-f8r9-fgfm, GHSA-jq35-85cj-fj4p); create "
        "stores them (daemon/create_unix.go)",
    ),
    (
        r'"HostConfig\.RestartPolicy": \{"MaximumRetryCount": 0, "Name": ""\}',
        '"HostConfig.RestartPolicy": {"MaximumRetryCount": 0, "Name": "no"}',
        "moby v28 daemon/create.go: an unset restart policy is stored as 'no'",
    ),
)

# Where pyd answers otherwise than every dockerd, on purpose (issue 15: no 5xx for a request a
# client could send): (pattern, replacement, why), applied after L{NEWER_DOCKERD}.
PYD_DELIBERATE: tuple[tuple[str, str, str], ...] = (
    (
        r'< 500\n(\{"message": "(?:bad format for links: |empty string specified for links))',
        r"< 400\n\1",
        "a malformed HostConfig.Links entry: dockerd 28 answers 500 (opts.ParseLink's plain "
        "error from registerLinks), pyd 400 with the same text: the value is the client's",
    ),
    (
        r'< 500\n(\{"message": "Invalid escape keys )',
        r"< 400\n\1",
        "exec create with bad DetachKeys: dockerd 28 answers 500 (daemon/exec.go returns a plain "
        "fmt.Errorf), pyd 400 with the same text: the keys are the client's",
    ),
    (
        r'< 500\n(\{"message": "ps: )',
        r"< 400\n\1",
        "top with ps_args ps refuses: dockerd 28 answers 500 (daemon/top_unix.go "
        "errdefs.System), pyd 400 with the same text: the arguments are the client's",
    ),
    (
        r'< 500\n(\{"message": "strconv\.(?:Atoi|ParseInt): parsing )',
        r"< 400\n\1",
        "a query parameter that is not a number (limit, t, since, until): dockerd answers 500 "
        "with strconv's error, pyd 400 with the same text: the value is the client's",
    ),
    (
        r'(> POST /build\S*(?: <tar[^\n]*)?\n)< 500\n(\{"message": "(?:invalid character |'
        r"invalid version |keep-storage is in bytes|Cannot locate specified Dockerfile: ))",
        r"\1< 400\n\2",
        "a /build parameter that does not parse (cachefrom, outputs, version, keep-storage) or "
        "names no Dockerfile of the context: dockerd answers 500 with the parser's or the "
        "context's error, pyd 400 with the same text",
    ),
    (
        r'(> POST /build\?t=([^&\s:]+)\S* <tar[^\n]*\n)< 500\n(\{"message": "invalid reference '
        r"format: repository name) must be lowercase",
        r"\1< 400\n\3 (\2) must be lowercase",
        "a build tag with capitals: dockerd answers 500; pyd 400 (the tag is the client's) with "
        "the name, as github.com/distribution/reference ParseNormalizedNamed words it in 28",
    ),
    (
        r'< 500\n(\{"message": "Container <id \d+> is not paused")',
        r"< 409\n\1",
        "unpause of a container that is not paused: dockerd answers 500 (daemon/pause.go "
        "containerUnpause's plain error), pyd 409 with the same text: a state conflict",
    ),
    (
        r'< 500\n(\{"message": "json: cannot unmarshal \S+ into Go struct field AuthConfig\.)',
        r"< 400\n\1",
        "POST /auth with a mistyped field: dockerd answers 500 (system_routes.go postAuth "
        "returns the decoder's error as it is), pyd 400 with the same text",
    ),
)

# Update fields moby 28 decodes and drops (container/container_unix.go UpdateContainer copies only
# the CPU, memory, pids, blkio weight and restart fields): pyd refuses them, naming the field.
_UPDATE_DROPPED = (
    "BlkioDeviceReadBps|BlkioDeviceReadIOps|BlkioDeviceWriteBps|BlkioDeviceWriteIOps|"
    "BlkioWeightDevice|CgroupParent|CpuCount|CpuPercent|DeviceCgroupRules|DeviceRequests|Devices|"
    "KernelMemoryTCP|MemorySwappiness|Ulimits"
)
PYD_DELIBERATE += (
    (
        rf'(> POST /containers/\S+/update \{{"({_UPDATE_DROPPED})": [^\n]*\n)< 200\n[^\n]*',
        r'\1< 400\n{"message": "\2 cannot be changed by docker update: pyd applies it when the '
        r'container is created"}',
        "docker update with a field dockerd accepts and drops without a word: pyd refuses it "
        "(honoured or refused), naming the field",
    ),
    (
        r'< 500\n(\{"message": "--storage-opt is supported only for overlay over xfs)',
        r"< 400\n\1",
        "StorageOpt where the data root is not xfs with pquota: dockerd answers 500 (the "
        "graph driver's plain error), pyd 400 with the same text",
    ),
    (
        r'(> POST /containers/create\S* \{[^\n]*"Cgroup": "([^"]+)"[^\n]*\n)< 201\n[^\n]*\n'
        r'(> GET /containers/\S+/json\n)< 200\n\{"HostConfig\.Cgroup": [^\n]*',
        r'\1< 400\n{"message": "HostConfig.Cgroup is not supported by pyd: \2 (use CgroupParent)"}'
        r'\n\3< 404\n{"HostConfig.Cgroup": null}',
        "HostConfig.Cgroup: dockerd stores it and never reads it (no moby 28 code uses it); pyd "
        "refuses it rather than ignore it",
    ),
    (
        r'(> POST /containers/create\S* \{[^\n]*"DeviceRequests": \[\{"Capabilities": '
        r'\[\["gpu"\]\], "Count": [^\n]*"Driver": "([^"]*)"[^\n]*\n)< 201\n[^\n]*\n'
        r'(> GET /containers/\S+/json\n)< 200\n\{"HostConfig\.DeviceRequests": [^\n]*',
        r'\1< 400\n{"message": "could not select device driver \\"\2\\" with capabilities: '
        r'[[gpu]]"}\n\3< 404\n{"HostConfig.DeviceRequests": null}',
        "a device request no driver serves: dockerd stores the container and refuses it at "
        "start (moby 28 daemon/devices.go, the same text); pyd refuses it at create, so no "
        "container that can never start is left",
    ),
    (
        r'(> POST /images/load\S* <tar[^\n]*\n< 200\n)\{"error": "open [^"]*/repositories: no '
        r"such file or directory\"[^\n]*",
        r'\1{"error": "invalid archive: does not contain a manifest.json or an index.json", '
        r'"errorDetail": {"message": "invalid archive: does not contain a manifest.json or an '
        r'index.json"}}',
        "a load of a tar without manifest.json: dockerd falls back to the legacy format and "
        "names a path on its host (moby 28 image/tarexport/load.go legacyLoad); pyd names no "
        "host path and says what the archive lacks",
    ),
    (
        r'(> POST /images/load\S* <tar[^\n]*\n< 200\n)\{"error": "Error processing tar file'
        r'\(exit status 1\): unexpected EOF"[^\n]*',
        r'\1{"error": "failed to read archive: truncated header", "errorDetail": {"message": '
        r'"failed to read archive: truncated header"}}',
        "a load of bytes that are not a tar: dockerd's text is its unpacking helper's exit "
        "(pkg/chrootarchive), pyd's its reader's",
    ),
    (
        r"(> POST /build\?remote=[^\n]*\n)< 500\n\{\"message\": \"error downloading remote "
        r"context [^\n]*",
        r'\1< 400\n{"message": "remote build contexts are not supported: send the context as a '
        r'tar"}',
        "a build context by URL (remote=): dockerd downloads it; pyd does not fetch build "
        "contexts from the network (400)",
    ),
)

# What the recording set-up adds (dockerd runs with --ip-forward=false): not part of the answer.
RECORDING_ARTEFACTS: tuple[tuple[str, str], ...] = (
    ("WARNING: IPv4 forwarding is disabled. Networking will not work.\n", ""),
    ("WARNING: IPv4 forwarding is disabled. Networking will not work.", ""),
    (
        '{"Warnings": ["IPv4 forwarding is disabled. Networking will not work."]}',
        '{"Warnings": null}',
    ),
)

# The recording dockerd's own directories (bench.common start_dockerd): a new name each run.
_DOCKERD_DIR = re.compile(r"/tmp/bench-dockerd-\w+/(?:data/tmp/docker-import-\d+/)?")
_ADDR4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(/\d+)?\b")
_MAC = re.compile(r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b")


class Normaliser(_IdNormaliser):
    """The build goldens' id/time normaliser, plus addresses the daemons pick themselves."""

    def __init__(self, tmp: str, keep: Sequence[str] = ()) -> None:
        super().__init__(tmp)
        self.keep = set(keep)

    def __call__(self, text: str) -> str:
        for old, new in RECORDING_ARTEFACTS:
            text = text.replace(old, new)
        text = super().__call__(text)
        text = _DOCKERD_DIR.sub("<dockerd>/", text)
        text = _ADDR4.sub(lambda m: m.group(0) if m.group(0) in self.keep else "<addr>", text)
        return _MAC.sub(lambda m: m.group(0) if m.group(0) in self.keep else "<mac>", text)


def apply_newer_dockerd(golden: str, deliberate: bool = True) -> str:
    """The 20.10 golden with L{NEWER_DOCKERD}'s and (with C{deliberate}) L{PYD_DELIBERATE}'s
    rewrites applied."""
    for old, new in RECORDING_ARTEFACTS:  # goldens recorded before a rule was added
        golden = golden.replace(old, new)
    for pattern, repl, _why in NEWER_DOCKERD + (PYD_DELIBERATE if deliberate else ()):
        golden = re.sub(pattern, repl, golden, flags=re.M)
    return golden


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, sock: str) -> None:
        super().__init__("localhost", timeout=120)
        self._path = sock

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(120)
        s.connect(self._path)
        self.sock = s


def api(
    host: str,
    method: str,
    path: str,
    body: Any = None,
    data: bytes | None = None,
    extra: Sequence[tuple[str, str]] = (),
) -> tuple[int, bytes]:
    """One Engine API request on a fresh connection: (status, body). C{body} is sent as JSON,
    C{data} as a tar, C{extra} as more headers."""
    c = _UnixHTTP(host.removeprefix("unix://"))
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        payload: bytes | str | None = None if body is None else json.dumps(body)
        if data is not None:
            headers, payload = {"Content-Type": "application/x-tar"}, data
        headers.update(extra)
        c.request(method, path, payload, headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def docker(
    host: str, config_dir: str, argv: Sequence[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The real 28.x CLI against C{host} with its own config directory."""
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CONFIG": config_dir}
    for k in ("DOCKER_CONTEXT", "DOCKER_BUILDKIT", "DOCKER_API_VERSION"):
        env.pop(k, None)
    # Bytes, not text: universal newlines would hide a TTY's \r\n.
    r = subprocess.run(
        [DOCKER, *argv],
        input=None if stdin is None else stdin.encode(),
        capture_output=True,
        timeout=120,
        env=env,
    )
    return subprocess.CompletedProcess(
        r.args, r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    )


def _pick(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if part == "<keys>":  # the keys an object has (whether a field is left out or null)
            return sorted(doc) if isinstance(doc, dict) else None
        if isinstance(doc, list):
            doc = doc[int(part)] if part.isdigit() and int(part) < len(doc) else None
        elif isinstance(doc, dict):
            doc = doc.get(part)
        else:
            return None
    return doc


def view(body: bytes, fields: Sequence[str] | None) -> str:
    """The JSON body as one sorted line, or only C{fields} (dotted paths) of it."""
    if fields == ():
        return "(body not compared)"
    if not body.strip():
        return "(empty)"
    try:
        doc = json.loads(body)
    except ValueError:
        # a stream's CRLF line ends shown, as a TTY's are (the golden file keeps no raw \r)
        return "(not json) " + _visible(body.decode(errors="replace").strip())
    if fields is not None:
        doc = {f: _pick(doc, f) for f in fields}
    return json.dumps(doc, sort_keys=True)


def _visible(s: str) -> str:
    return s.replace("\r", "\\r")


def _wait(host: str, cfg: str, step: Wait) -> str:
    # Bounded polling for a state the scenario needs (not a timing assertion: the transcript
    # only says whether the state was reached).
    for _ in range(600):
        r = docker(host, cfg, ["inspect", "-f", step.template, step.name])
        if r.stdout.strip() == step.value:
            return "reached"
        time.sleep(0.05)
    return "NOT reached"


# The "Id" of the last API answer that had one, per host: a later step's path may name it as
# C{{last_id}} (an exec's id, which the scenario cannot know in advance).
_LAST_ID: dict[str, str] = {}


def with_registry(step: Step, registry: str) -> Step:
    """C{step} with C{{registry}} replaced by the registry's address."""
    if not registry:
        return step
    if isinstance(step, Cli):
        return attrs.evolve(step, argv=tuple(a.replace("{registry}", registry) for a in step.argv))
    if isinstance(step, Api):
        body = step.body
        if body is not None:
            body = json.loads(json.dumps(body).replace("{registry}", registry))
        return attrs.evolve(step, path=step.path.replace("{registry}", registry), body=body)
    return step


def run_step(host: str, cfg: str, step: Step, out: list[str], registry: str = "") -> None:
    """Run one step and append its transcript lines to C{out} (the step as written: the
    registry's address stays C{{registry}})."""
    shown, step = step, with_registry(step, registry)
    if isinstance(step, Cli):
        stdin = f" <<< {step.stdin!r}" if step.stdin is not None else ""
        assert isinstance(shown, Cli)
        out.append(f"$ docker {' '.join(shown.argv)}{stdin}")
        r = docker(host, cfg, step.argv, step.stdin)
        out += ["[stdout]", _visible(r.stdout), "[stderr]", _visible(r.stderr)]
        out.append(f"[exit {r.returncode}]")
    elif isinstance(step, Api):
        assert isinstance(shown, Api)
        body = f" {json.dumps(shown.body, sort_keys=True)}" if shown.body is not None else ""
        if step.data is not None:
            body = f" <tar of {len(step.data)} bytes>"
        sent = "".join(f" [{k}: {v}]" for k, v in step.headers)
        out.append(f"> {step.method} {shown.path}{body}{sent}")
        path = step.path.replace("{last_id}", _LAST_ID.get(host, ""))
        status, data = api(host, step.method, path, step.body, step.data, step.headers)
        try:
            _LAST_ID[host] = json.loads(data)["Id"]
        except (ValueError, KeyError, TypeError):
            pass
        out.append(f"< {status}")
        out.append(view(data, step.fields))
    else:
        out.append(f"@wait {step.name} {step.template} = {step.value}")
        out.append(_wait(host, cfg, step))


def run_scenario(
    host: str,
    scenario: Scenario,
    tmp: str,
    steps_done: Callable[[], None] | None = None,
    registry: str = "",
) -> str:
    """Run every step of C{scenario} against C{host}; the normalised transcript.
    C{steps_done} is called between the steps and the clean-up; C{registry} is the address of
    the registry a L{Scenario.registry} scenario uses (shown as C{<registry>})."""
    cfg = os.path.join(tmp, "docker-config")
    norm = Normaliser(tmp, scenario.keep)
    out: list[str] = []
    try:
        for step in scenario.steps:
            run_step(host, cfg, step, out, registry)
    finally:
        if steps_done is not None:
            steps_done()
        for step in scenario.cleanup:
            run_step(host, cfg, step, [], registry)
    if registry:  # before the address normaliser sees it
        out = [x.replace(registry, "<registry>") for x in out]
    return "\n".join(norm(x.rstrip("\n")) if x else x for x in out) + "\n"


def reset(host: str, cfg: str) -> None:
    """Remove every container, user network and volume (a scenario starts from a clean daemon)."""
    ids = docker(host, cfg, ["ps", "-aq"]).stdout.split()
    if ids:
        docker(host, cfg, ["rm", "-f", *ids])
    nets = docker(host, cfg, ["network", "ls", "-q", "--filter", "type=custom"]).stdout.split()
    if nets:
        docker(host, cfg, ["network", "rm", *nets])
    vols = docker(host, cfg, ["volume", "ls", "-q"]).stdout.split()
    if vols:
        docker(host, cfg, ["volume", "rm", "-f", *vols])
