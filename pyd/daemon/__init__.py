"""The composition root (layer: daemon): the service tree, its listeners and the wiring of every
area. Only this package and L{pyd.tap} see every layer."""
