"""The typed create spec (pyd.engine.spec): Go's typed decoding, version rules, validation texts,
the records, and the field table against the official API 1.50 spec."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pyd.core.errors import InvalidParameter
from pyd.engine.spec import (
    FIELDS,
    NOT_APPLIED,
    UNPARSED,
    given_fields,
    parse_create,
    parse_endpoint,
    parse_update,
    rules,
    stored_spec,
)
from pyd.engine.spec.gojson import decode, json_float, object_pairs, paths
from pyd.engine.spec.schema import CREATE_REQUEST, ENDPOINT_SETTINGS, HOST_CONFIG

# The property names of the official API 1.50 spec's create body (extracted from moby's
# api/docs/v1.50.yaml; the file says which commit).
OFFICIAL = os.path.join(
    os.path.dirname(__file__), "..", "data", "engine_api_v1.50_create_fields.json"
)


def _err(body: Any, version: tuple[int, int] = (1, 50)) -> str:
    try:
        parse_create(body, version, ncpu=4)
    except InvalidParameter as e:
        return str(e)
    raise AssertionError(f"accepted: {body!r}")


def _hc(**hc: Any) -> dict[str, Any]:
    return {"Image": "busybox", "HostConfig": hc}


class MistypedJSONTests(SynchronousTestCase):
    """Go's type errors, worded as dockerd 23+ gives them (a 400, nothing stored)."""

    def test_list_of_lists_cmd(self) -> None:
        """C{"Cmd": [["sh"]]} is refused as dockerd refuses it."""
        self.assertEqual(
            _err({"Image": "busybox", "Cmd": [["sh"]]}),
            "invalid JSON: json: cannot unmarshal array into Go struct field "
            "CreateRequest.Cmd of type string",
        )

    def test_entrypoint_mixed(self) -> None:
        """An Entrypoint of C{[["x"], 1]} is refused (the StrSlice error, whole value)."""
        self.assertEqual(
            _err({"Image": "busybox", "Entrypoint": [["x"], 1]}),
            "invalid JSON: json: cannot unmarshal array into Go struct field "
            "CreateRequest.Entrypoint of type string",
        )

    def test_strslice_forms(self) -> None:
        """Cmd as a string is a one-element list; null elements are empty strings."""
        spec = parse_create({"Image": "b", "Cmd": "sh", "Entrypoint": ["a", None]})
        self.assertEqual(spec.process.cmd, ("sh",))
        self.assertEqual(spec.process.entrypoint, ("a", ""))
        self.assertEqual(spec.config["Cmd"], ["sh"])
        self.assertIn("CapAdd of type string", _err(_hc(CapAdd=[1])))
        self.assertIn("HostConfig.HostConfig.CapAdd", _err(_hc(CapAdd=[1])))

    def test_number_as_string(self) -> None:
        """C{"Memory": "1g"}: a string where Go wants an int64."""
        self.assertEqual(
            _err(_hc(Memory="1g")),
            "invalid JSON: json: cannot unmarshal string into Go struct field "
            "HostConfig.HostConfig.Memory of type int64",
        )

    def test_string_as_number(self) -> None:
        """A number where Go wants a string; the innermost struct names the field."""
        self.assertEqual(
            _err(_hc(PortBindings={"80/tcp": [{"HostPort": 8080}]})),
            "invalid JSON: json: cannot unmarshal number into Go struct field "
            "PortBinding.HostConfig.PortBindings.HostPort of type string",
        )

    def test_bool_as_string(self) -> None:
        """C{"Tty": "true"} is a string, not a bool."""
        self.assertEqual(
            _err({"Image": "b", "Tty": "true"}),
            "invalid JSON: json: cannot unmarshal string into Go struct field "
            "CreateRequest.Tty of type bool",
        )

    def test_out_of_range_and_fractions(self) -> None:
        """Integers out of the Go type's range, or with a fraction, quote the number."""
        self.assertEqual(
            _err(_hc(BlkioWeight=70000)),
            "invalid JSON: json: cannot unmarshal number 70000 into Go struct field "
            "HostConfig.HostConfig.BlkioWeight of type uint16",
        )
        self.assertIn("number 1.5 into", _err(_hc(Memory=1.5)))
        # the literal as sent, when the body was read keeping it (the API does)
        raw = json.loads('{"HostConfig": {"Memory": 1e3}}', parse_float=json_float)
        self.assertIn("number 1e3 into", _err(raw))
        self.assertIn("number -1 into", _err(_hc(IOMaximumIOps=-1)))
        self.assertIn("of type uint64", _err(_hc(IOMaximumIOps=-1)))

    def test_named_types(self) -> None:
        """Named Go types appear as Go prints them."""
        self.assertIn("of type container.NetworkMode", _err(_hc(NetworkMode=1)))
        self.assertIn("of type container.RestartPolicyMode", _err(_hc(RestartPolicy={"Name": 1})))
        self.assertIn(
            "HealthcheckConfig.Healthcheck.Interval of type time.Duration",
            _err({"Image": "b", "Healthcheck": {"Interval": "1s"}}),
        )
        self.assertIn(
            "Mount.HostConfig.Mounts.Target of type string", _err(_hc(Mounts=[{"Target": 5}]))
        )
        self.assertIn(
            "TmpfsOptions.HostConfig.Mounts.TmpfsOptions.Mode of type fs.FileMode",
            _err(_hc(Mounts=[{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Mode": "1"}}])),
        )
        self.assertIn("of type units.Ulimit", _err(_hc(Ulimits=["nofile=1"])))
        self.assertIn("of type nat.PortSet", _err({"Image": "b", "ExposedPorts": ["80"]}))
        self.assertIn("of type struct {}", _err({"Image": "b", "Volumes": {"/v": 1}}))
        self.assertIn("of type [2]uint", _err(_hc(ConsoleSize={"h": 1})))

    def test_section_of_wrong_type(self) -> None:
        """A whole section of the wrong type, and a body that is not an object."""
        self.assertEqual(
            _err({"Image": "b", "HostConfig": []}),
            "invalid JSON: json: cannot unmarshal array into Go struct field "
            "CreateRequest.HostConfig of type container.HostConfig",
        )
        self.assertEqual(
            _err([]),
            "invalid JSON: json: cannot unmarshal array into Go value of type "
            "container.CreateRequest",
        )
        self.assertIn(
            "NetworkingConfig.EndpointsConfig.Aliases of type []string",
            _err({"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": "a"}}}}),
        )
        self.assertIn(
            "EndpointSettings.NetworkingConfig",
            _err({"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": "a"}}}}),
        )

    def test_first_type_error_wins_unless_fatal(self) -> None:
        """Go saves the first type error and goes on; a StrSlice error stops at once."""
        self.assertIn("CreateRequest.Tty", _err({"Image": "b", "Tty": 1, "User": 2}))
        self.assertIn("CreateRequest.Cmd", _err({"Image": "b", "Tty": 1, "Cmd": 2}))

    def test_null_is_missing(self) -> None:
        """null leaves a field at its zero value; in lists and maps it is the element's zero."""
        spec = parse_create(
            {
                "Image": "b",
                "Cmd": None,
                "Env": ["A=1", None] and ["A=1"],
                "Labels": {"a": None},
                "HostConfig": {"Memory": None, "Binds": None, "Dns": None, "Init": None},
            }
        )
        self.assertIsNone(spec.process.cmd)
        self.assertEqual(spec.process.labels, {"a": ""})
        self.assertEqual(spec.resources.memory, 0)
        self.assertEqual(spec.mounts.binds, ())
        self.assertIsNone(spec.runtime.init)
        self.assertEqual(parse_create({"Image": "b", "HostConfig": None}).host_config, {})

    def test_unknown_keys_ignored(self) -> None:
        """Keys Go has no field for are dropped, also from what inspect shows."""
        spec = parse_create({"Image": "b", "Bogus": 1, "HostConfig": {"Nope": [1]}})
        self.assertNotIn("Bogus", spec.config)
        self.assertNotIn("Nope", spec.host_config)

    def test_key_case(self) -> None:
        """Keys match fields case-insensitively, as Go's decoder does (an exact match first)."""
        spec = parse_create({"image": "b", "hostconfig": {"privileged": True, "MEMORY": 7 << 20}})
        self.assertEqual(spec.process.image, "b")
        self.assertTrue(spec.security.privileged)
        self.assertEqual(spec.resources.memory, 7 << 20)
        self.assertEqual(spec.host_config["Privileged"], True)

    def test_key_folding_and_exact_match_first(self) -> None:
        """Go folds keys with Unicode simple folding (the Kelvin sign is a k) and prefers an
        exact match: a folded key sent after the exact one still overwrites it (document order)."""
        spec = parse_create({"Image": "b", "HostConfig": {"\u212aernelMemory": 1 << 22}}, (1, 41))
        self.assertEqual(spec.resources.kernel_memory, 1 << 22)
        spec = parse_create({"Image": "b", "Tty": False, "tty": True})
        self.assertTrue(spec.process.tty)
        spec = parse_create({"Image": "b", "tty": True, "Tty": False})
        self.assertFalse(spec.process.tty)

    def test_fixed_size_array(self) -> None:
        """ConsoleSize is Go's [2]uint: extra elements are ignored, missing ones are zero."""
        self.assertEqual(parse_create(_hc(ConsoleSize=[5])).runtime.console_size, (5, 0))
        self.assertEqual(parse_create(_hc(ConsoleSize=[5, 6, 7])).runtime.console_size, (5, 6))
        self.assertIn("number -1 into", _err(_hc(ConsoleSize=[-1, 0])))

    def test_duplicate_keys(self) -> None:
        """Duplicate keys: the last scalar wins; a repeated struct decodes into the same struct
        (Go merges), a repeated map keeps earlier entries; so a Privileged hidden in an earlier
        HostConfig is seen."""
        raw = (
            '{"Image": "a", "Image": "b", "HostConfig": {"Privileged": true, "LogConfig": '
            '{"Type": "local"}}, "HostConfig": {"Memory": 7340032, "LogConfig": {"Config": '
            '{"max-size": "1m"}}}, "Labels": {"x": "1"}, "labels": {"y": "2"}, '
            '"hostconfig": {"privileged": false}}'
        )
        spec = parse_create(json.loads(raw, object_pairs_hook=object_pairs))
        self.assertEqual(spec.process.image, "b")
        self.assertFalse(spec.security.privileged)
        self.assertEqual(spec.resources.memory, 7340032)
        self.assertEqual(spec.logging.type, "local")
        self.assertEqual(spec.logging.config, {"max-size": "1m"})
        self.assertEqual(spec.process.labels, {"x": "1", "y": "2"})
        raw2 = (
            '{"Image": "a", "HostConfig": {"Privileged": true}, "HostConfig": {"Memory": 7340032}}'
        )
        self.assertTrue(
            parse_create(json.loads(raw2, object_pairs_hook=object_pairs)).security.privileged
        )

    def test_endpoint_body(self) -> None:
        """The connect body's EndpointConfig is decoded the same way."""
        ep = parse_endpoint({"Aliases": ["a"], "IPAMConfig": {"IPv4Address": "10.0.0.2"}})
        self.assertEqual(ep.aliases, ("a",))
        self.assertEqual(ep.ipam and ep.ipam.ipv4_address, "10.0.0.2")
        with self.assertRaises(InvalidParameter) as e:
            parse_endpoint({"Aliases": [1]})
        self.assertIn("Go struct field EndpointSettings.Aliases of type string", str(e.exception))


class StoredSpecTests(SynchronousTestCase):
    """A stored container's sections read back typed; mistyped legacy values read as zero."""

    def test_legacy_mistyped_record(self) -> None:
        """A record stored before the typed door (Cmd [["sh"]], a numeric label) still reads:
        the mistyped values are Go's zero values, the rest is kept."""
        spec = stored_spec(
            {"Image": "b", "Cmd": [["sh"]], "Labels": {"a": 1, "b": "2"}, "StopSignal": "SIGINT"},
            {"AutoRemove": "yes", "RestartPolicy": {"Name": "always"}},
        )
        self.assertIsNone(spec.process.cmd)
        self.assertEqual(spec.process.labels, {"a": "", "b": "2"})
        self.assertEqual(spec.process.stop_signal, "SIGINT")
        self.assertFalse(spec.restart.auto_remove)
        self.assertEqual(spec.restart.name, "always")


class UpdateBodyTests(SynchronousTestCase):
    """C{docker update} bodies are typed the same way (no wrong type reaches a comparison)."""

    def test_mistyped(self) -> None:
        """A string memory, a number restart policy name: Go's texts for UpdateConfig."""
        for body, text in (
            (
                {"Memory": "1g"},
                "invalid JSON: json: cannot unmarshal string into Go struct field "
                "UpdateConfig.Memory of type int64",
            ),
            (
                {"RestartPolicy": {"Name": 1}},
                "invalid JSON: json: cannot unmarshal number into Go struct field "
                "RestartPolicy.RestartPolicy.Name of type container.RestartPolicyMode",
            ),
            (
                {"PidsLimit": [1]},
                "invalid JSON: json: cannot unmarshal array into Go struct field "
                "UpdateConfig.PidsLimit of type int64",
            ),
        ):
            with self.assertRaises(InvalidParameter) as e:
                parse_update(body)
            self.assertEqual(str(e.exception), text)

    def test_decoded(self) -> None:
        """Known fields keep Go's names, in any case; others (HostConfig's) are dropped."""
        self.assertEqual(
            parse_update({"memory": 7 << 20, "Privileged": True, "RestartPolicy": {"Name": "no"}}),
            {"Memory": 7 << 20, "RestartPolicy": {"Name": "no"}},
        )


class VersionRuleTests(SynchronousTestCase):
    """dockerd's postContainersCreate: fields by API version."""

    def test_auto_remove_before_125(self) -> None:
        """API < 1.25: the client removes the container; AutoRemove is dropped."""
        self.assertFalse(parse_create(_hc(AutoRemove=True), (1, 24)).restart.auto_remove)
        self.assertTrue(parse_create(_hc(AutoRemove=True), (1, 25)).restart.auto_remove)

    def test_before_140(self) -> None:
        """API < 1.40: IpcMode defaults to shareable, NonRecursive and KernelMemoryTCP dropped."""
        mount = {
            "Type": "bind",
            "Source": "/s",
            "Target": "/t",
            "BindOptions": {"NonRecursive": True},
        }
        old = parse_create(_hc(Mounts=[mount], KernelMemoryTCP=1 << 20), (1, 39))
        self.assertEqual(old.namespaces.ipc, "shareable")
        self.assertEqual(old.host_config["IpcMode"], "shareable")
        assert old.mounts.mounts[0].bind is not None
        self.assertFalse(old.mounts.mounts[0].bind.non_recursive)
        self.assertEqual(old.resources.kernel_memory_tcp, 0)
        new = parse_create(_hc(Mounts=[mount]), (1, 40))
        self.assertEqual(new.namespaces.ipc, "")
        assert new.mounts.mounts[0].bind is not None
        self.assertTrue(new.mounts.mounts[0].bind.non_recursive)

    def test_options_on_wrong_mount_type(self) -> None:
        """API >= 1.42 refuses options of another mount type; older APIs drop them."""
        mount = {"Type": "bind", "Source": "/s", "Target": "/t", "VolumeOptions": {"NoCopy": True}}
        self.assertEqual(
            _err(_hc(Mounts=[mount]), (1, 42)),
            'VolumeOptions must not be specified on mount type "bind"',
        )
        tm = {"Type": "volume", "Target": "/t", "TmpfsOptions": {}}
        self.assertEqual(
            _err(_hc(Mounts=[tm]), (1, 43)),
            'TmpfsOptions must not be specified on mount type "volume"',
        )
        old = parse_create(_hc(Mounts=[mount], ConsoleSize=[10, 20]), (1, 41))
        self.assertIsNone(old.mounts.mounts[0].volume)
        self.assertEqual(old.runtime.console_size, (0, 0))
        self.assertEqual(parse_create(_hc(ConsoleSize=[10, 20])).runtime.console_size, (10, 20))

    def test_kernel_memory_dropped_from_142(self) -> None:
        """KernelMemory was removed in API 1.42."""
        self.assertEqual(
            parse_create(_hc(KernelMemory=1 << 22), (1, 42)).resources.kernel_memory, 0
        )
        self.assertEqual(
            parse_create(_hc(KernelMemory=1 << 22), (1, 41)).resources.kernel_memory, 1 << 22
        )

    def test_annotations_from_143(self) -> None:
        """Annotations came with API 1.43."""
        self.assertEqual(parse_create(_hc(Annotations={"a": "b"}), (1, 42)).runtime.annotations, {})
        self.assertEqual(
            parse_create(_hc(Annotations={"a": "b"}), (1, 43)).runtime.annotations, {"a": "b"}
        )

    def test_before_144(self) -> None:
        """API < 1.44: StartInterval dropped, ReadOnlyForceRecursive and several endpoints refused."""
        body = {"Image": "b", "Healthcheck": {"Test": ["CMD", "true"], "StartInterval": 2_000_000}}
        hc = parse_create(body, (1, 43)).process.healthcheck
        self.assertEqual(hc and hc.start_interval, 0)
        hc = parse_create(body, (1, 44)).process.healthcheck
        self.assertEqual(hc and hc.start_interval, 2_000_000)
        mount = {
            "Type": "bind", "Source": "/s", "Target": "/t",
            "BindOptions": {"ReadOnlyForceRecursive": True},
        }  # fmt: skip
        self.assertEqual(
            _err(_hc(Mounts=[mount]), (1, 43)),
            "BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer",
        )
        two = {"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"a": {}, "b": {}}}}
        self.assertEqual(
            _err(two, (1, 43)), "Container cannot be created with multiple network endpoints: a, b"
        )
        self.assertEqual(set(parse_create(two, (1, 44)).network.endpoints), {"a", "b"})

    def test_subpath_from_145(self) -> None:
        """VolumeOptions.Subpath needs API 1.45."""
        mount = {"Type": "volume", "Source": "v", "Target": "/t", "VolumeOptions": {"Subpath": "s"}}
        self.assertEqual(
            _err(_hc(Mounts=[mount]), (1, 44)), "VolumeOptions.Subpath needs API v1.45 or newer"
        )

    def test_before_148(self) -> None:
        """API < 1.48: GwPriority dropped, image mounts refused; 1.48+: the volume-driver warning."""
        body = {"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"a": {"GwPriority": 5}}}}
        self.assertEqual(parse_create(body, (1, 47)).network.endpoints["a"].gw_priority, 0)
        self.assertEqual(parse_create(body, (1, 48)).network.endpoints["a"].gw_priority, 5)
        self.assertEqual(
            _err(_hc(Mounts=[{"Type": "image", "Source": "i", "Target": "/t"}]), (1, 47)),
            'Mount type "Image" needs API v1.48 or newer',
        )
        vd = _hc(VolumeDriver="local", Mounts=[{"Type": "volume", "Target": "/t"}])
        self.assertEqual(len(parse_create(vd, (1, 48)).warnings), 1)
        self.assertEqual(parse_create(vd, (1, 47)).warnings, ())

    def test_interface_sysctls_from_148(self) -> None:
        """Per-interface sysctls must be endpoint driver options from API 1.48 (own netns)."""
        body = _hc(Sysctls={"net.ipv4.conf.eth0.forwarding": "1"})
        self.assertEqual(
            _err(body, (1, 48)),
            'interface specific sysctl setting "net.ipv4.conf.eth0.forwarding" must be supplied '
            "using driver option 'com.docker.network.endpoint.sysctls'",
        )
        self.assertEqual(
            parse_create(body, (1, 47)).runtime.sysctls, {"net.ipv4.conf.eth0.forwarding": "1"}
        )
        self.assertEqual(
            parse_create(_hc(Sysctls={"net.ipv4.ip_forward": "1"}), (1, 50)).runtime.sysctls,
            {"net.ipv4.ip_forward": "1"},
        )

    def test_pids_limit_unlimited(self) -> None:
        """PidsLimit 0 or negative means no limit (dropped)."""
        self.assertIsNone(parse_create(_hc(PidsLimit=-1)).resources.pids_limit)
        self.assertIsNone(parse_create(_hc(PidsLimit=0)).resources.pids_limit)
        self.assertEqual(parse_create(_hc(PidsLimit=10)).resources.pids_limit, 10)


class ValidationTests(SynchronousTestCase):
    """dockerd's create checks, with their texts (the existing validators, now behind the spec)."""

    def test_texts(self) -> None:
        """A sample of each group's refusals."""
        cases: list[tuple[dict[str, Any], str]] = [
            (_hc(Memory=1024), "Minimum memory limit allowed is 6MB"),
            (_hc(NanoCpus=10_000_000_000), "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"),
            (_hc(NanoCpus=1, CpuPeriod=1000), "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
            (_hc(BlkioWeight=5), "Range of blkio weight is from 10 to 1000"),
            (_hc(RestartPolicy={"Name": "sometimes"}), "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
            (_hc(RestartPolicy={"Name": "always"}, AutoRemove=True), "can't create 'AutoRemove' container with restart policy"),
            (_hc(Ulimits=[{"Name": "bogus", "Soft": 1, "Hard": 1}]), "invalid ulimit type: bogus"),
            (_hc(Ulimits=[{"Name": "nofile", "Soft": 2, "Hard": 1}]), "ulimit soft limit must be less than or equal to hard limit: 2 > 1"),
            (_hc(ShmSize=-1), "SHM size can not be less than 0"),
            (_hc(SecurityOpt=["bogus"]), 'invalid --security-opt 1: "bogus"'),
            (_hc(LogConfig={"Type": "fluentd"}), 'error looking up logging plugin fluentd: plugin "fluentd" not found'),
            (_hc(ExtraHosts=["nohost"]), 'bad format for add-host: "nohost"'),  # dockerd's ValidateExtraHost
            (_hc(CapAdd=["NOT_A_CAP"]), "invalid CapAdd: unknown capability: \"CAP_NOT_A_CAP\""),
            ({"Image": "b", "Env": ["=x"]}, "invalid environment variable: =x"),
            ({"Image": "b", "StopSignal": "SIGNOPE"}, "Invalid signal: SIGNOPE"),
            ({"Image": "b", "Healthcheck": {"Interval": 10}}, "Interval in Healthcheck cannot be less than 1ms"),
            ({"Image": "b", "WorkingDir": "app"}, "the working directory 'app' is invalid, it needs to be an absolute path"),
            # moby's order: the working directory, the stop signal, then Env.
            ({"Image": "b", "WorkingDir": "./x", "Env": ["=x"]}, "the working directory './x' is invalid, it needs to be an absolute path"),
            ({"Image": "b", "StopSignal": "SIGNOPE", "Env": ["=x"]}, "Invalid signal: SIGNOPE"),
        ]  # fmt: skip
        for body, text in cases:
            self.assertEqual(_err(body), text, body)

    def test_working_dir_cleaned(self) -> None:
        """An absolute working directory is kept in Go's filepath.Clean form, as dockerd keeps
        it (inspect shows the cleaned path)."""
        for given, kept in [("/a/./b/", "/a/b"), ("//srv//x/../y", "/srv/y"), ("/", "/")]:
            spec = parse_create({"Image": "b", "WorkingDir": given})
            self.assertEqual(spec.process.working_dir, kept, given)

    def test_resource_texts(self) -> None:
        """The memory, CPU and blkio refusals (dockerd's verifyPlatformContainerResources)."""
        mb = 1 << 20
        cpus, mems = rules.host_cpusets()
        cases: list[tuple[dict[str, Any], str]] = [
            (_hc(Memory=8 * mb, MemorySwap=7 * mb), "Minimum memoryswap limit should be larger than memory limit, see usage"),
            (_hc(MemorySwap=8 * mb), "You should always set the Memory limit when using Memoryswap limit, see usage"),
            (_hc(MemoryReservation=mb), "Minimum memory reservation allowed is 6MB"),
            (_hc(Memory=8 * mb, MemoryReservation=9 * mb), "Minimum memory limit can not be less than memory reservation limit, see usage"),
            (_hc(NanoCpus=1, CpuQuota=1000), "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
            (_hc(CpuPeriod=10), "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
            (_hc(CpuQuota=10), "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
            (_hc(CpuShares=-1), "invalid CPU shares: must be a positive integer"),
            (_hc(CpusetCpus="a-b"), "Invalid value a-b for cpuset cpus: invalid format: a-b"),
            (_hc(CpusetCpus="3-1"), "Invalid value 3-1 for cpuset cpus: invalid format: 3-1"),
            (_hc(CpusetMems="0,"), "Invalid value 0, for cpuset mems: invalid format: 0,"),
            # Checked before the kernel sees it (a kernel refusal used to be a 500).
            (_hc(CpusetCpus="4095"), f"Requested CPUs are not available - requested 4095, available: {cpus}"),
            (_hc(CpusetMems="0-4095"), f"Requested memory nodes are not available - requested 0-4095, available: {mems}"),
        ]  # fmt: skip
        for body, text in cases:
            self.assertEqual(_err(body), text, body)

    def test_restart_health_log_texts(self) -> None:
        """Restart policy, healthcheck and log option refusals."""
        cases: list[tuple[dict[str, Any], str]] = [
            (_hc(RestartPolicy={"Name": "always", "MaximumRetryCount": 2}), "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
            (_hc(RestartPolicy={"Name": "on-failure", "MaximumRetryCount": -1}), "invalid restart policy: maximum retry count cannot be negative"),
            ({"Image": "b", "Healthcheck": {"Retries": -1}}, "Retries in Healthcheck cannot be negative"),
            ({"Image": "b", "Healthcheck": {"Timeout": 5}}, "Timeout in Healthcheck cannot be less than 1ms"),
            (_hc(LogConfig={"Type": "json-file", "Config": {"mode": "x"}}), "logger: logging mode not supported: x"),
            (_hc(LogConfig={"Type": "json-file", "Config": {"max-buffer-size": "1m"}}), "logger: max-buffer-size option is only supported with 'mode=non-blocking'"),
            (_hc(LogConfig={"Type": "json-file", "Config": {"bogus": "1"}}), "unknown log opt 'bogus' for json-file log driver"),
            (_hc(LogConfig={"Type": "local", "Config": {"bogus": "1"}}), "unknown log opt 'bogus' for log driver local"),
            (_hc(SecurityOpt=["bogus=1"]), 'invalid --security-opt 2: "bogus=1"'),
        ]  # fmt: skip
        for body, text in cases:
            self.assertEqual(_err(body), text, body)


class MacAddressTests(SynchronousTestCase):
    """The deprecated Config.MacAddress moves to the main network's endpoint, as dockerd does."""

    def test_moves_to_main_network(self) -> None:
        """On the default bridge, or a user network named by NetworkMode."""
        spec = parse_create({"Image": "b", "MacAddress": "02:42:ac:11:00:09"})
        self.assertEqual(spec.network.endpoints["bridge"].mac_address, "02:42:ac:11:00:09")
        self.assertIn("deprecated", spec.warnings[0])
        spec = parse_create(
            {"Image": "b", "MacAddress": "02:42:ac:11:00:09", "HostConfig": {"NetworkMode": "n"}}
        )
        self.assertEqual(spec.network.endpoints["n"].mac_address, "02:42:ac:11:00:09")

    def test_mismatch_refused(self) -> None:
        """An endpoint asking for another MAC is refused with dockerd's text."""
        body = {
            "Image": "b",
            "MacAddress": "02:42:ac:11:00:09",
            "NetworkingConfig": {
                "EndpointsConfig": {"bridge": {"MacAddress": "02:42:ac:11:00:0a"}}
            },
        }
        self.assertEqual(
            _err(body),
            "the container-wide MAC address must match the endpoint-specific MAC address "
            "for the main network, or be left empty",
        )


class MacAddressBeforeAPI144Tests(SynchronousTestCase):
    """API < 1.44: the container-wide MAC is the only one (dockerd's handleMACAddressBC)."""

    def test_endpoint_mac_dropped_without_container_wide(self) -> None:
        """An endpoint MAC alone is ignored, as the old API ignored it."""
        body = {
            "Image": "b",
            "NetworkingConfig": {"EndpointsConfig": {"n": {"MacAddress": "02:42:ac:11:00:0a"}}},
        }
        self.assertEqual(parse_create(body, (1, 43)).network.endpoints["n"].mac_address, "")
        self.assertEqual(
            parse_create(body, (1, 44)).network.endpoints["n"].mac_address, "02:42:ac:11:00:0a"
        )

    def test_container_wide_wins_without_warning(self) -> None:
        """The container-wide MAC goes to the one endpoint; no deprecation warning yet."""
        body = {
            "Image": "b",
            "MacAddress": "02:42:ac:11:00:09",
            "HostConfig": {"NetworkMode": "n"},
            "NetworkingConfig": {"EndpointsConfig": {"n-id": {"MacAddress": "02:42:ac:11:00:0a"}}},
        }
        spec = parse_create(body, (1, 43))
        self.assertEqual(spec.network.endpoints["n-id"].mac_address, "02:42:ac:11:00:09")
        self.assertEqual(spec.warnings, ())

    def test_host_network_conflicts(self) -> None:
        """A MAC with the host network is dockerd's conflict."""
        body = {
            "Image": "b",
            "MacAddress": "02:42:ac:11:00:09",
            "HostConfig": {"NetworkMode": "host"},
        }
        self.assertEqual(
            _err(body, (1, 43)), "conflicting options: mac-address and the network mode"
        )


class RecordTests(SynchronousTestCase):
    """Every field group lands in its record."""

    def test_all_groups(self) -> None:
        """A body touching each group reads back typed."""
        spec = parse_create(
            {
                "Image": "busybox", "Cmd": ["sh"], "Env": ["A=1"], "User": "1:2", "Tty": True,
                "Labels": {"l": "v"}, "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/v": {}},
                "StopSignal": "SIGINT", "StopTimeout": 3, "MacAddress": "02:42:ac:11:00:02",
                "Healthcheck": {"Test": ["CMD", "true"], "Retries": 2},
                "HostConfig": {
                    "Memory": 8 << 20, "CpuShares": 512, "PidsLimit": 5, "OomKillDisable": True,
                    "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}],
                    "BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 100}],
                    "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1000}],
                    "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rwm"}],
                    "DeviceCgroupRules": ["c 1:3 rwm"],
                    "DeviceRequests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}],
                    "Privileged": False, "CapAdd": ["NET_ADMIN"], "CapDrop": "MKNOD",
                    "SecurityOpt": ["no-new-privileges", "seccomp=unconfined", "apparmor=unconfined"],
                    "ReadonlyRootfs": True, "MaskedPaths": [], "GroupAdd": ["audio"],
                    "NetworkMode": "container:web", "PidMode": "container:db", "IpcMode": "host",
                    "UTSMode": "host", "CgroupnsMode": "private",
                    "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                    "PublishAllPorts": True, "Dns": ["1.1.1.1"], "DnsSearch": ["x"],
                    "DnsOptions": ["ndots:1"], "ExtraHosts": ["h:1.2.3.4"], "Links": ["a:b"],
                    "Binds": ["/h:/c:ro"], "Tmpfs": {"/t": "size=1m"}, "VolumesFrom": ["o:ro"],
                    "VolumeDriver": "local",
                    "Mounts": [{"Type": "volume", "Source": "v", "Target": "/m",
                                "VolumeOptions": {"NoCopy": True, "DriverConfig": {"Name": "local", "Options": {"o": "x"}}}}],
                    "LogConfig": {"Type": "local", "Config": {"max-size": "1m"}},
                    "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                    "Init": True, "ShmSize": 1 << 20, "Sysctls": {"net.ipv4.ip_forward": "1"},
                    "OomScoreAdj": 5, "Runtime": "crun", "StorageOpt": {"size": "1G"},
                },
                "NetworkingConfig": {"EndpointsConfig": {"web": {"Aliases": ["w"], "Links": ["x:y"],
                                                               "IPAMConfig": {"IPv4Address": "10.1.0.2"}}}},
            },
            ncpu=4,
        )  # fmt: skip
        p = spec.process
        self.assertEqual(
            (p.image, p.cmd, p.env, p.user, p.tty), ("busybox", ("sh",), ("A=1",), "1:2", True)
        )
        self.assertEqual(
            (p.exposed_ports, p.volumes, p.stop_signal, p.stop_timeout),
            (("80/tcp",), ("/v",), "SIGINT", 3),
        )
        self.assertEqual(
            p.healthcheck and (p.healthcheck.test, p.healthcheck.retries), (("CMD", "true"), 2)
        )
        res = spec.resources
        self.assertEqual(
            (res.memory, res.cpu_shares, res.pids_limit, res.oom_kill_disable),
            (8 << 20, 512, 5, True),
        )
        self.assertEqual(res.ulimits[0].name, "nofile")
        self.assertEqual(res.blkio_weight_device[0].value, 100)
        self.assertEqual(res.blkio_read_bps[0].value, 1000)
        self.assertEqual(spec.devices.devices[0].path_in_container, "/dev/n")
        self.assertEqual(spec.devices.cgroup_rules, ("c 1:3 rwm",))
        self.assertEqual(spec.devices.requests[0].capabilities, (("gpu",),))
        sec = spec.security
        self.assertEqual((sec.cap_add, sec.cap_drop), (("NET_ADMIN",), ("MKNOD",)))
        self.assertTrue(sec.no_new_privileges)
        self.assertEqual((sec.seccomp, sec.apparmor), ("unconfined", "unconfined"))
        self.assertEqual(sec.masked_paths, ())
        self.assertIsNone(sec.readonly_paths)
        self.assertEqual(spec.namespaces.joins(), {"network": "web", "pid": "db"})
        net = spec.network
        self.assertEqual(net.port_bindings["80/tcp"][0].host_port, "8080")
        self.assertEqual(net.endpoints["web"].aliases, ("w",))
        self.assertEqual(
            net.endpoints["web"].ipam and net.endpoints["web"].ipam.ipv4_address, "10.1.0.2"
        )
        # the container-wide MAC has no network to move to under container:web: dropped, warned
        self.assertNotIn("MacAddress", spec.config)
        self.assertEqual(len(spec.warnings), 1)
        m = spec.mounts
        self.assertEqual(
            (m.binds, m.tmpfs, m.volumes_from, m.volume_driver),
            (("/h:/c:ro",), {"/t": "size=1m"}, ("o:ro",), "local"),
        )
        vol = m.mounts[0].volume
        self.assertEqual(
            vol and (vol.no_copy, vol.driver, vol.driver_options), (True, "local", {"o": "x"})
        )
        self.assertEqual((spec.logging.type, spec.logging.config), ("local", {"max-size": "1m"}))
        self.assertEqual((spec.restart.name, spec.restart.maximum_retry_count), ("on-failure", 3))
        rt = spec.runtime
        self.assertEqual(
            (rt.init, rt.shm_size, rt.oom_score_adj, rt.runtime), (True, 1 << 20, 5, "crun")
        )
        self.assertEqual(rt.sysctls, {"net.ipv4.ip_forward": "1"})

    def test_frozen(self) -> None:
        """The spec cannot be changed after parsing."""
        spec = parse_create({"Image": "b"})
        with self.assertRaises(AttributeError):
            spec.process = None  # type: ignore[misc,assignment]  # the test proves the record is frozen
        with self.assertRaises(TypeError):
            spec.host_config["Privileged"] = True  # type: ignore[index]  # the test proves the section is a read-only mapping


class FieldTableTests(SynchronousTestCase):
    """The table of wire fields is complete against the schema and the official API 1.50 spec."""

    def _official(self) -> dict[str, list[str]]:
        with open(OFFICIAL) as f:
            data = json.load(f)
        return {
            k: data[k] for k in ("Config", "HostConfig", "EndpointSettings", "NetworkingConfig")
        }

    def test_every_official_field_is_parsed_or_listed(self) -> None:
        """Each property of the API 1.50 create body is in FIELDS or UNPARSED (the audit of
        honoured-or-refused builds on this)."""
        missing = [
            f"{section}.{name}"
            for section, names in self._official().items()
            for name in sorted(names)
            if f"{section}.{name}" not in FIELDS and f"{section}.{name}" not in UNPARSED
        ]
        self.assertEqual(missing, [])

    def test_table_matches_schema(self) -> None:
        """Every field the Go schema decodes has a row, and every row names a decoded field."""
        from pyd.engine.spec.schema import CONFIG_FIELDS

        schema = (
            {f"Config.{n}" for n in CONFIG_FIELDS}
            | {f"HostConfig.{n}" for n in HOST_CONFIG.fields}
            | {f"EndpointSettings.{n}" for n in ENDPOINT_SETTINGS.fields}
            | {"NetworkingConfig.EndpointsConfig"}
        )
        self.assertEqual(sorted(schema - set(FIELDS) - set(UNPARSED)), [])
        self.assertEqual(sorted(set(FIELDS) - schema), [])
        self.assertEqual(sorted(NOT_APPLIED - set(FIELDS)), [])

    def test_record_paths_exist(self) -> None:
        """Each row's record path is an attribute of the parsed spec."""
        spec = parse_create({"Image": "b", "NetworkingConfig": {"EndpointsConfig": {"n": {}}}})
        ep = spec.network.endpoints["n"]
        for wire, path in FIELDS.items():
            obj: Any = ep if wire.startswith("EndpointSettings.") else spec
            for part in path.split("."):
                self.assertTrue(hasattr(obj, part), f"{wire} -> {path}")
                obj = getattr(obj, part)

    def test_given_fields(self) -> None:
        """given_fields lists the rows a request sets beyond Go's zero values."""
        spec = parse_create(
            {
                "Image": "b",
                "Tty": False,
                "Labels": {"Capital": ""},
                "HostConfig": {
                    "Privileged": True,
                    "Memory": 0,
                    "LogConfig": {"Type": "", "Config": {}},
                    "RestartPolicy": {"Name": "always"},
                    "ConsoleSize": [0, 0],
                    "Binds": [],
                },
                "NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": ["a"], "Links": []}}},
            }
        )
        self.assertEqual(
            given_fields(spec),
            {
                "Config.Image",
                "Config.Labels",
                "HostConfig.Privileged",
                "HostConfig.RestartPolicy",
                "NetworkingConfig.EndpointsConfig",
                "EndpointSettings.Aliases",
            },
        )
        self.assertEqual(given_fields(parse_create({})), frozenset())

    def test_paths_walk(self) -> None:
        """The schema can list nested paths (for coverage tables)."""
        all_paths = paths(CREATE_REQUEST)
        self.assertIn("HostConfig.LogConfig.Type", all_paths)
        self.assertIn("HostConfig.Mounts.VolumeOptions.DriverConfig.Name", all_paths)
        self.assertIn("NetworkingConfig.EndpointsConfig.IPAMConfig.IPv4Address", all_paths)
        self.assertEqual(decode({"x": 1}, HOST_CONFIG), {})


class CpusetListTests(SynchronousTestCase):
    """The cpuset list syntax as Go's parsers.ParseUintList reads it."""

    def test_lists(self) -> None:
        """Single numbers, ranges and both; a bad one is dockerd's 'invalid format'."""
        self.assertEqual(rules.parse_uint_list(""), set())
        self.assertEqual(rules.parse_uint_list("0-2,5"), {0, 1, 2, 5})
        for bad in ("x", "1-", "-1", "2-1", "1,,2", "1 "):
            with self.assertRaises(ValueError) as e:
                rules.parse_uint_list(bad)
            self.assertEqual(str(e.exception), f"invalid format: {bad}")
