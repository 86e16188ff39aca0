"""moto's in-process S3 for the staging program, with no real AWS reachable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real profile, credentials or endpoint can leak into a test."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "BOTO_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


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
