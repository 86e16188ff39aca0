"""Run the awsb* commands in this process against the session's moto server."""

from __future__ import annotations

import importlib
import io
import sys

import pytest

from tests.jobs.conftest import Result


@pytest.fixture
def awsb(aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """`awsb("awsbsub", *argv, stdin=TEXT)`: one command's exit code and output."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    monkeypatch.setenv("JOBS_OUTPUTS_FILE", str(aws.outputs_file))
    monkeypatch.chdir(aws.tmp_path)

    def run(command: str, *argv: str, stdin: str | None = None) -> Result:
        module = importlib.import_module(f"jobs.awsb.{command}")
        # A terminal unless a script is piped in, as in a user's shell.
        piped = io.StringIO(stdin or "")
        piped.isatty = lambda: stdin is None  # type: ignore[method-assign]
        monkeypatch.setattr(sys, "stdin", piped)
        capsys.readouterr()
        code = module.main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
