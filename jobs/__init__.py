"""Command-line client for running multi-node MPI jobs on the stack's AWS Batch queue."""
