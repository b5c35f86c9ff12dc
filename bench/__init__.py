"""pyd benchmarks: one module per area, each runnable as `python -m bench.<area>`."""
