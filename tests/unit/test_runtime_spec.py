"""The OCI spec's namespaces and /dev/shm for --pid/--ipc modes."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pyd.drivers.runtime import spec as oci


def build(**kw: Any) -> dict[str, Any]:
    inp = oci.RuntimeSpecInput(
        args=("true",),
        env=(),
        cwd="/",
        uid=0,
        gid=0,
        additional_gids=(),
        terminal=False,
        hostname="h",
        rootfs="/r",
        **kw,
    )
    return oci.build_spec(inp)


def namespaces(spec: dict[str, Any]) -> dict[str, str | None]:
    return {ns["type"]: ns.get("path") for ns in spec["linux"]["namespaces"]}


def shm(spec: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")


class NamespaceSpecTests(SynchronousTestCase):
    def test_private_by_default(self) -> None:
        """Own pid and ipc namespaces and an own shm tmpfs."""
        spec = build()
        ns = namespaces(spec)
        self.assertEqual((ns["pid"], ns["ipc"]), (None, None))
        self.assertEqual(shm(spec)["type"], "tmpfs")

    def test_join_another_container(self) -> None:
        """--pid/--ipc container:X join X's namespaces by path and bind X's shm."""
        spec = build(pid_path="/proc/42/ns/pid", ipc_path="/proc/42/ns/ipc", shm_source="/b/x/shm")
        ns = namespaces(spec)
        self.assertEqual((ns["pid"], ns["ipc"]), ("/proc/42/ns/pid", "/proc/42/ns/ipc"))
        self.assertEqual(
            shm(spec),
            {
                "destination": "/dev/shm",
                "type": "bind",
                "source": "/b/x/shm",
                "options": ["rbind", "rprivate"],
            },
        )

    def test_host_modes(self) -> None:
        """--pid host / --ipc host: no namespace of that type at all."""
        ns = namespaces(build(pid_host=True, ipc_host=True))
        self.assertNotIn("pid", ns)
        self.assertNotIn("ipc", ns)


class MemorySpecTests(SynchronousTestCase):
    def test_kernel_tcp(self) -> None:
        """KernelMemoryTCP reaches the runtime as C{memory.kernelTCP} (as dockerd hands it to
        runc); unset, the spec has no memory section for it."""
        spec = build(resources=oci.Resources(kernel_memory_tcp=1 << 20))
        self.assertEqual(spec["linux"]["resources"]["memory"], {"kernelTCP": 1 << 20})
        self.assertNotIn("memory", build()["linux"]["resources"])
