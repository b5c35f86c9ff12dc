"""Network drivers: netlink (bridges, veths, namespaces), nftables, the DNS resolver."""
