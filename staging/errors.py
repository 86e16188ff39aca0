"""What can go wrong in staging, as the exit codes of docs/CONTRACTS.md say."""

from __future__ import annotations

from launcher.contract import APPLICATION_ERROR, USAGE


class StagingError(Exception):
    """Anything else: an S3 or file-system error (exit 1, which the staging job retries)."""

    exit_code = APPLICATION_ERROR


class BadData(StagingError):
    """A bad location, or data that is missing or denied, named in the message (exit 2:
    a retry would fail the same way)."""

    exit_code = USAGE
