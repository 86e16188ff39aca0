"""Start and stop the AWS emulator (aws_emulator) as a process of its own on loopback."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120


@contextmanager
def running(log: Path | None = None) -> Iterator[str]:
    """An empty emulated account for the block: yields its endpoint URL.

    The emulator's stderr (moto's tracebacks behind a 500) goes to `log` when given.
    """
    errors = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "tests.deploy.aws_emulator"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=errors, text=True,
                            stdin=subprocess.DEVNULL)
    timer = threading.Timer(START_TIMEOUT, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        timer.cancel()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the AWS emulator did not start: {line!r}")
        yield line.split()[-1]
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
        if log:
            errors.close()


def client(service: str, endpoint: str, region: str) -> Any:
    """A boto3 client of the emulated account, whatever profile this machine has."""
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")
