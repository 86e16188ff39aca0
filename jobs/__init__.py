"""Command-line client for running multi-node MPI jobs on the stack's AWS Batch queue."""

# The one place the version is written: pyproject.toml reads it (dynamic version).
__version__ = "0.1.0"
