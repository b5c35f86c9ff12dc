"""The honoured-or-refused table of every create field of API 1.50 (layer: engine).

Each field of C{Config}, C{HostConfig}, C{NetworkingConfig} and C{EndpointSettings} is one of:
C{honoured} (it takes effect: in the container, the runtime spec, or inspect as dockerd shows
it), C{refused} (a 400 naming the field and why, from L{pyd.engine.honoured} or the parser),
C{discarded} (dockerd's warn-and-discard where this kernel cannot apply it: the client gets
dockerd's warning and inspect shows the zero value; applied where the kernel can), or C{output}
(filled in by the daemon; dockerd ignores it in a request too). tests/unit/test_api_audit.py
walks the API spec against this table, sends each refused field and checks its error, and
checks that each honoured field names an existing test of its effect; docs/api-coverage.md
shows the table.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Row:
    verdict: str  # honoured | refused | discarded | output
    how: str  # what happens, as the docs say it
    test: str = ""  # tests/<file>.py::<function> that shows the effect (honoured)


H, R, D, OUT = "honoured", "refused", "discarded", "output"
_CONF = "tests/e2e/test_confinement_cli.py::"

AUDIT: dict[str, Row] = {
    # Config
    "Config.Hostname": Row(H, "the container's hostname and /etc/hostname", "tests/unit/test_create_effects.py::test_process_fields"),
    "Config.Domainname": Row(H, "the UTS domain name", "tests/unit/test_create_effects.py::test_process_fields"),
    "Config.User": Row(H, "the process's user and groups (resolved in the image)", "tests/unit/test_containers_engine.py::test_start_builds_spec"),
    "Config.AttachStdin": Row(H, "attach streams of docker run", "tests/e2e/test_streams_cli.py::test_stdin"),
    "Config.AttachStdout": Row(H, "attach streams of docker run", "tests/e2e/test_streams_cli.py::test_exit_code_and_streams"),
    "Config.AttachStderr": Row(H, "attach streams of docker run", "tests/e2e/test_streams_cli.py::test_exit_code_and_streams"),
    "Config.ExposedPorts": Row(H, "merged with the image's; -P publishes them", "tests/unit/test_containers_engine.py::test_image_defaults_merged"),
    "Config.Tty": Row(H, "a terminal for the process", "tests/e2e/test_streams_cli.py::test_tty_typed"),
    "Config.OpenStdin": Row(H, "stdin kept open", "tests/e2e/test_streams_cli.py::test_stdin"),
    "Config.StdinOnce": Row(H, "stdin closed after the first attach ends", "tests/e2e/test_streams_cli.py::test_stdin"),
    "Config.Env": Row(H, "the process environment (merged with the image's)", "tests/unit/test_containers_engine.py::test_start_builds_spec"),
    "Config.Cmd": Row(H, "the command", "tests/unit/test_containers_engine.py::test_start_builds_spec"),
    "Config.Healthcheck": Row(H, "health checks run as dockerd runs them", "tests/unit/test_containers_engine.py::test_health_transitions"),
    "Config.ArgsEscaped": Row(H, "stored and shown (Windows-only meaning, as dockerd)", "tests/unit/test_create_effects.py::test_stored_and_committed"),
    "Config.Image": Row(H, "the image", "tests/unit/test_containers_engine.py::test_image_defaults_merged"),
    "Config.Volumes": Row(H, "anonymous volumes (merged with the image's)", "tests/e2e/test_volumes_containers.py::test_copy_up"),
    "Config.WorkingDir": Row(H, "the process's working directory (created)", "tests/unit/test_create_effects.py::test_process_fields"),
    "Config.Entrypoint": Row(H, "the entrypoint", "tests/unit/test_create_effects.py::test_process_fields"),
    "Config.NetworkDisabled": Row(R, "refused when true with a network: use --network none (with it, accepted: no network but loopback, as dockerd)"),
    "Config.MacAddress": Row(H, "the main endpoint's MAC (before API 1.44)", "tests/unit/test_engine_spec.py::test_moves_to_main_network"),
    "Config.OnBuild": Row(H, "stored; docker commit keeps it", "tests/unit/test_create_effects.py::test_stored_and_committed"),
    "Config.Labels": Row(H, "labels (filters, inspect)", "tests/unit/test_containers_engine.py::test_image_defaults_merged"),
    "Config.StopSignal": Row(H, "the signal docker stop sends", "tests/unit/test_create_effects.py::test_stop_signal_and_timeout"),
    "Config.StopTimeout": Row(H, "the grace period of docker stop", "tests/unit/test_create_effects.py::test_stop_signal_and_timeout"),
    "Config.Shell": Row(H, "stored; docker commit keeps it", "tests/unit/test_create_effects.py::test_stored_and_committed"),
    # HostConfig
    "HostConfig.Binds": Row(H, "bind mounts and named volumes", "tests/e2e/test_volumes_containers.py::test_binds"),
    "HostConfig.ContainerIDFile": Row(H, "stored (the CLI writes the file, as with dockerd)", "tests/unit/test_create_effects.py::test_stored_and_committed"),
    "HostConfig.LogConfig": Row(H, "pyd's log drivers (LOG_DRIVERS) with their options; others refused", "tests/unit/test_containers_engine.py::test_rotation_is_watched_while_running"),
    "HostConfig.NetworkMode": Row(H, "bridge, host, none, container:X, user networks", "tests/e2e/test_network_containers.py::test_modes_and_options"),
    "HostConfig.PortBindings": Row(H, "published ports", "tests/e2e/test_network_containers.py::test_httpd_published"),
    "HostConfig.RestartPolicy": Row(H, "restart policies", "tests/e2e/test_containers_cli.py::test_restart_policy"),
    "HostConfig.AutoRemove": Row(H, "--rm", "tests/unit/test_containers_engine.py::test_auto_remove"),
    "HostConfig.VolumeDriver": Row(H, "local only; others refused", "tests/unit/test_volumes_engine.py::test_volume_driver"),
    "HostConfig.VolumesFrom": Row(H, "another container's mounts", "tests/e2e/test_volumes_containers.py::test_volumes_from"),
    "HostConfig.ConsoleSize": Row(H, "the first terminal size (process.consoleSize)", "tests/unit/test_create_effects.py::test_sysctls_groups_console"),
    "HostConfig.Annotations": Row(H, "OCI annotations of the runtime spec", _CONF + "test_accepted_forms"),
    "HostConfig.CapAdd": Row(H, "capabilities added", "tests/unit/test_containers_engine.py::test_start_builds_spec"),
    "HostConfig.CapDrop": Row(H, "capabilities dropped", "tests/unit/test_containers_engine.py::test_start_builds_spec"),
    "HostConfig.CgroupnsMode": Row(H, "private (default on cgroup v2) or host; others refused", "tests/unit/test_create_effects.py::test_uts_and_cgroupns_modes"),
    "HostConfig.Cgroup": Row(R, "refused when set (no cgroup joins)"),
    "HostConfig.Dns": Row(H, "resolv.conf nameservers", "tests/unit/test_create_effects.py::test_dns_fields"),
    "HostConfig.DnsOptions": Row(H, "resolv.conf options", "tests/unit/test_create_effects.py::test_dns_fields"),
    "HostConfig.DnsSearch": Row(H, "resolv.conf search domains", "tests/unit/test_create_effects.py::test_dns_fields"),
    "HostConfig.ExtraHosts": Row(H, "/etc/hosts entries", "tests/unit/test_containers_engine.py::test_start_builds_spec"),
    "HostConfig.GroupAdd": Row(H, "supplementary groups", "tests/unit/test_create_effects.py::test_sysctls_groups_console"),
    "HostConfig.IpcMode": Row(H, "private, shareable, none, host, container:X", "tests/e2e/test_namespaces_cli.py::test_pid_and_ipc_join"),
    "HostConfig.Links": Row(H, "legacy links (hosts entries)", "tests/unit/test_links.py::test_link_on_default_bridge"),
    "HostConfig.OomScoreAdj": Row(H, "the process's oom_score_adj", _CONF + "test_ulimit_oom_score_pids"),
    "HostConfig.PidMode": Row(H, "private, host, container:X", "tests/e2e/test_namespaces_cli.py::test_pid_and_ipc_join"),
    "HostConfig.Privileged": Row(H, "every capability and host device, no seccomp", _CONF + "test_privileged_sees_host_devices"),
    "HostConfig.PublishAllPorts": Row(H, "-P", "tests/integration/test_network_kernel.py::test_ephemeral_and_conflict"),
    "HostConfig.ReadonlyRootfs": Row(H, "read-only root file system", "tests/e2e/test_cp_mounts_cli.py::test_read_only_root"),
    "HostConfig.SecurityOpt": Row(H, "seccomp, no-new-privileges, systempaths, writable-cgroups, apparmor=unconfined, label=disable; others refused", _CONF + "test_custom_profile_applied"),
    "HostConfig.StorageOpt": Row(R, "refused: overlay without xfs project quotas (dockerd's text)"),
    "HostConfig.Tmpfs": Row(H, "tmpfs mounts with their options", "tests/unit/test_volumes_engine.py::test_anonymous_and_tmpfs"),
    "HostConfig.UTSMode": Row(H, "private or host", "tests/unit/test_create_effects.py::test_uts_and_cgroupns_modes"),
    "HostConfig.UsernsMode": Row(H, "host (the default; other modes refused: no remapping)", "tests/unit/test_create_effects.py::test_uts_and_cgroupns_modes"),
    "HostConfig.ShmSize": Row(H, "/dev/shm size (unset: default-shm-size)", "tests/e2e/test_runtimes_cli.py::test_defaults_inside_the_container"),
    "HostConfig.Sysctls": Row(H, "namespaced sysctls; others refused", "tests/unit/test_create_effects.py::test_sysctls_groups_console"),
    "HostConfig.Runtime": Row(H, "the runtime named (crun, runc, io.containerd.runc.v2, daemon.json's runtimes; default-runtime when unset, stored as dockerd does); others refused with dockerd's text", "tests/e2e/test_runtimes_cli.py::test_runs_under_the_runtime"),
    "HostConfig.Isolation": Row(H, "default only (dockerd's text for others)", "tests/unit/test_create_effects.py::test_usernsmode_and_isolation_others_refused"),
    "HostConfig.Mounts": Row(H, "bind, volume, tmpfs mounts", "tests/e2e/test_volumes_containers.py::test_tmpfs_size_enforced"),
    "HostConfig.MaskedPaths": Row(H, "masked paths (systempaths=unconfined empties them)", _CONF + "test_accepted_forms"),
    "HostConfig.ReadonlyPaths": Row(H, "read-only paths (systempaths=unconfined empties them)", _CONF + "test_accepted_forms"),
    "HostConfig.Init": Row(H, "tini as pid 1 (unset: the daemon's init option)", "tests/e2e/test_runtimes_cli.py::test_defaults_inside_the_container"),
    # HostConfig: Resources
    "HostConfig.CpuShares": Row(H, "cpu shares", "tests/unit/test_create_effects.py::test_cpu_and_memory"),
    "HostConfig.Memory": Row(H, "memory limit", "tests/e2e/test_containers_cli.py::test_oom_killed"),
    "HostConfig.NanoCpus": Row(H, "CFS quota", "tests/unit/test_create_effects.py::test_nano_cpus"),
    "HostConfig.CgroupParent": Row(H, "the cgroup is <parent>/<id> (cgroupfs)", "tests/e2e/test_confinement_cli.py::test_cgroup_parent"),
    "HostConfig.BlkioWeight": Row(D, "io weight; dockerd's warning and discard where the kernel has none", _CONF + "test_blkio"),
    "HostConfig.BlkioWeightDevice": Row(D, "per-device weights; discarded as BlkioWeight"),
    "HostConfig.BlkioDeviceReadBps": Row(H, "throttle with the device's numbers", _CONF + "test_blkio"),
    "HostConfig.BlkioDeviceWriteBps": Row(H, "throttle with the device's numbers", "tests/unit/test_create_effects.py::test_blkio_throttles"),
    "HostConfig.BlkioDeviceReadIOps": Row(H, "throttle with the device's numbers", "tests/unit/test_create_effects.py::test_blkio_throttles"),
    "HostConfig.BlkioDeviceWriteIOps": Row(H, "throttle with the device's numbers", "tests/unit/test_create_effects.py::test_blkio_throttles"),
    "HostConfig.CpuPeriod": Row(H, "CFS period", "tests/unit/test_create_effects.py::test_cpu_and_memory"),
    "HostConfig.CpuQuota": Row(H, "CFS quota", "tests/unit/test_create_effects.py::test_cpu_and_memory"),
    "HostConfig.CpuRealtimePeriod": Row(H, "cpu.rt_period_us; refused where the kernel has no RT group scheduling", "tests/unit/test_create_effects.py::test_cpu_realtime"),
    "HostConfig.CpuRealtimeRuntime": Row(H, "cpu.rt_runtime_us; refused as the period", "tests/unit/test_create_effects.py::test_cpu_realtime"),
    "HostConfig.CpusetCpus": Row(H, "cpuset", "tests/unit/test_create_effects.py::test_cpu_and_memory"),
    "HostConfig.CpusetMems": Row(H, "cpuset memory nodes", "tests/unit/test_create_effects.py::test_cpu_and_memory"),
    "HostConfig.Devices": Row(H, "device nodes with their cgroup permissions", _CONF + "test_device_mapped"),
    "HostConfig.DeviceCgroupRules": Row(H, "device cgroup rules", _CONF + "test_device_cgroup_rule"),
    "HostConfig.DeviceRequests": Row(R, "refused: no device driver (GPU) on this host (dockerd's text)"),
    "HostConfig.KernelMemoryTCP": Row(D, "memory.kmem.tcp.limit_in_bytes on cgroup v1 (as dockerd); a warning and discarded where the kernel has none"),
    "HostConfig.MemoryReservation": Row(H, "memory soft limit", "tests/unit/test_create_effects.py::test_cpu_and_memory"),
    "HostConfig.MemorySwap": Row(H, "swap limit", "tests/unit/test_create_effects.py::test_cpu_and_memory"),
    "HostConfig.MemorySwappiness": Row(D, "memory.swappiness on cgroup v1; dockerd's warning and discard on v2"),
    "HostConfig.OomKillDisable": Row(D, "memory.oom_control on cgroup v1; dockerd's warning and discard on v2"),
    "HostConfig.PidsLimit": Row(H, "pids.max", _CONF + "test_ulimit_oom_score_pids"),
    "HostConfig.Ulimits": Row(H, "process rlimits", _CONF + "test_ulimit_oom_score_pids"),
    "HostConfig.CpuCount": Row(H, "stored and shown (Windows-only meaning: dockerd on Linux keeps it without effect)", "tests/unit/test_create_effects.py::test_stored_and_committed"),
    "HostConfig.CpuPercent": Row(D, "dockerd's warning on Linux, discarded"),
    "HostConfig.IOMaximumIOps": Row(R, "refused: Windows only (dockerd's text)"),
    "HostConfig.IOMaximumBandwidth": Row(R, "refused: Windows only (dockerd's text)"),
    # NetworkingConfig / EndpointSettings
    "NetworkingConfig.EndpointsConfig": Row(H, "the networks joined at create", "tests/e2e/test_network_containers.py::test_names_connect_internal"),
    "EndpointSettings.IPAMConfig": Row(H, "static addresses, link-local IPs", "tests/e2e/test_network_containers.py::test_modes_and_options"),
    "EndpointSettings.Links": Row(H, "per-network links", "tests/e2e/test_network_dns.py::test_links_on_a_user_network"),
    "EndpointSettings.Aliases": Row(H, "DNS aliases on the network", "tests/e2e/test_network_containers.py::test_names_connect_internal"),
    "EndpointSettings.MacAddress": Row(H, "the endpoint's MAC", "tests/e2e/test_network_containers.py::test_modes_and_options"),
    "EndpointSettings.DriverOpts": Row(H, "kept and shown per network in inspect, as dockerd's bridge keeps the keys it does not read; com.docker.network.endpoint.sysctls and .ifname (which dockerd applies) refused", "tests/e2e/test_network_containers.py::test_endpoint_driver_opts_kept"),
    "EndpointSettings.GwPriority": Row(R, "refused when non-zero"),
    "EndpointSettings.NetworkID": Row(OUT, "output (dockerd fills it in)"),
    "EndpointSettings.DNSNames": Row(OUT, "output (dockerd computes it)"),
    "EndpointSettings.EndpointID": Row(OUT, "output"),
    "EndpointSettings.Gateway": Row(OUT, "output"),
    "EndpointSettings.IPAddress": Row(OUT, "output (IPAMConfig asks for an address)"),
    "EndpointSettings.IPPrefixLen": Row(OUT, "output"),
    "EndpointSettings.IPv6Gateway": Row(OUT, "output"),
    "EndpointSettings.GlobalIPv6Address": Row(OUT, "output"),
    "EndpointSettings.GlobalIPv6PrefixLen": Row(OUT, "output"),
}  # fmt: skip
