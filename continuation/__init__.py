"""The continuation controller's brain: runs as families of Batch jobs, pure decisions, and
the Batch calls that carry them out (README.md)."""
