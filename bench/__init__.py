"""Benchmarks: `make bench` (see BENCHMARKS.md and the README)."""
