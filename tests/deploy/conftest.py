"""The round trips of every variant, run side by side once per session (each its own account)."""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.deploy import scenario
from tests.deploy.scenario import VARIANTS, Outcome

TERRAFORM = shutil.which("terraform")


@pytest.fixture(scope="session")
def outcomes() -> dict[str, Outcome]:
    """Each variant's round trip: mostly waiting on Terraform's pollers, so all at once."""
    if TERRAFORM is None:
        pytest.fail("no terraform CLI on PATH: install Terraform >= 1.11 to run the round trip")
    base = Path(tempfile.mkdtemp(prefix="mnp-roundtrip-"))
    try:
        with ThreadPoolExecutor(len(VARIANTS)) as pool:
            futures = {v.name: pool.submit(scenario.run, v, base / v.name) for v in VARIANTS}
            return {name: future.result() for name, future in futures.items()}
    finally:
        shutil.rmtree(base, ignore_errors=True)
