"""The kernel runtime: OCI spec builder, crun + conmon driver, cgroup files (layer: drivers)."""
