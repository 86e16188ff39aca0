"""Benchmarks: `make bench` (see BENCHMARKS.md and bench/README.md)."""
