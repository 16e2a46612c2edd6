"""Tools for tests and benchmarks (not used by the running platform)."""
