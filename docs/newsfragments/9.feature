systemd units with socket activation and sd_notify, SIGHUP reload, Prometheus metrics, DB backup before schema upgrades.
