"""The local volume driver and its copy-up helpers (layer: drivers)."""
