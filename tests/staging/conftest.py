"""moto's in-process S3 for the staging program, with no real AWS reachable (the jobs tests'
autouse isolation: no profile, credentials or endpoint of this machine leaks in)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.jobs.conftest import isolated_env  # noqa: F401  (autouse)

REGION = "us-east-1"


@pytest.fixture
def s3() -> Iterator[Any]:
    """A client of moto's in-process S3 with the bucket `data` made."""
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket="data")
        yield client


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(operation, key) of every S3 call the staging program makes, in order."""
    from staging import s3 as staging_s3

    made = staging_s3.client
    seen: list[tuple[str, str]] = []

    def recording() -> Any:
        client = made()

        def record(params: dict, model: Any, **_: Any) -> None:
            seen.append((model.name, params.get("Key", "")))

        client.meta.events.register("provide-client-params.s3.*", record)
        return client

    monkeypatch.setattr(staging_s3, "client", recording)
    return seen
