"""Drivers behind the streaming endpoints: conmon attach sockets, conmon exec sessions, the
resize FIFO, cgroup statistics and container-root file access (layer: drivers)."""
