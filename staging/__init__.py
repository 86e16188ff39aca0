"""Data in and out of a job: S3 prefixes to the shared file system before the run, the job's
outputs back to S3 after it (docs/CONTRACTS.md, "Data in and out")."""
