"""The pinned protocol: benchmarks and their data, importers, metrics, and a runner that stores nothing."""
