"""ParallelCluster's awsbatch commands (awsbsub, awsbstat, ...) over the jobs CLI."""
