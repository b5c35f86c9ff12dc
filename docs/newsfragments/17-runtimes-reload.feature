runtimes and default-runtime are reloaded by SIGHUP as dockerd reloads them, and docker info's Runtimes entries carry dockerd 28's status (the runtime's OCI features) from API 1.44.
