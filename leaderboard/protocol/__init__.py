"""The pinned protocol: benchmarks and their data, importers, metrics, result records and the runner."""
