"""The round trips of every variant, run side by side once per session (each its own account)."""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.deploy import scenario
from tests.deploy.scenario import VARIANTS, Outcome

TERRAFORM = shutil.which("terraform")
# E2E_VARIANTS=efa,default runs only those (make e2e E2E_VARIANTS=efa); default: every one.
SELECTED = [n for n in os.environ.get("E2E_VARIANTS", "").split(",") if n]


@pytest.fixture(scope="session")
def outcomes() -> dict[str, Outcome]:
    """Each variant's round trip: mostly waiting on Terraform's pollers, so all at once."""
    if TERRAFORM is None:
        pytest.fail("no terraform CLI on PATH: install Terraform >= 1.11 to run the round trip")
    unknown = set(SELECTED) - {v.name for v in VARIANTS}
    if unknown:
        pytest.fail(f"E2E_VARIANTS names {sorted(unknown)}; choose from "
                    f"{', '.join(v.name for v in VARIANTS)}")
    chosen = [v for v in VARIANTS if not SELECTED or v.name in SELECTED]
    base = Path(tempfile.mkdtemp(prefix="mnp-roundtrip-"))
    try:
        with ThreadPoolExecutor(len(chosen)) as pool:
            futures = {v.name: pool.submit(scenario.run, v, base / v.name) for v in chosen}
            return {name: future.result() for name, future in futures.items()}
    finally:
        shutil.rmtree(base, ignore_errors=True)

