Remote management: mutual TLS with roles per certificate, `pyd tls`, `pyd hosts` and `pyd fleet`.
