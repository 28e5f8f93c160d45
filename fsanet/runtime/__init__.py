"""Running models fast: the optimised inference graph, allocator tuning and the benchmark."""
