"""A moto server on loopback for the whole session, and per-test Batch/Logs/ECR resources."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.jobs.moto_env import REGION, Aws

OWN_ENV = ("JOB_QUEUE_NAME", "JOB_DEFINITION_NAME", "MAX_VCPUS", "LOG_GROUP_NAME",
           "JOBS_OUTPUTS_FILE", "JOBS_STACK", "SPOT_JOB_QUEUE_NAME", "SPOT_JOB_DEFINITION_NAME")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real AWS profile, credentials or endpoint can leak into a test."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "BOTO_")) or key in OWN_ENV:
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps help at the terminal width


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """moto in server mode on a free loopback port, recording requests to a temp file."""
    recording = tmp_path_factory.mktemp("moto") / "recording.jsonl"
    patch = pytest.MonkeyPatch()
    patch.setenv("MOTO_ENABLE_RECORDING", "True")
    patch.setenv("MOTO_RECORDER_FILEPATH", str(recording))
    from moto.batch.models import JobDefinition
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    # The recorder reads its path at import; another test may have imported moto first.
    patch.setattr(recorder, "_location", str(recording))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto 5.2.5 leaves nodeProperties out of DescribeJobDefinitions; Batch returns it, and
    # --image-tag copies it.
    original = JobDefinition.describe

    def describe(self: Any) -> dict[str, Any]:
        result = original(self)
        if self.node_properties is not None:
            result["nodeProperties"] = self.node_properties
        return result

    patch.setattr(JobDefinition, "describe", describe)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    patch.undo()


@pytest.fixture
def aws(moto_url: str, tmp_path: Path) -> Aws:
    """Fresh resources on the session's moto server; recording starts after seeding."""
    env = Aws(moto_url, tmp_path)
    env.setup()
    return env


@dataclass
class Result:
    """Exit code and output of an in-process CLI run."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_main(aws: Aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Call jobs.cli.main in this process against moto (fast; for the many bad-input cases)."""
    from jobs.cli import main

    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    monkeypatch.setenv("JOBS_OUTPUTS_FILE", str(aws.outputs_file))
    monkeypatch.chdir(aws.tmp_path)

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
