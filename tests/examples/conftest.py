"""Example images built in the local engine; the stack's job definition from the emulator's
fixtures (imported so pytest sees them here too)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from emulator import engine
from tests.emulator.conftest import (  # noqa: F401  (fixtures; synthesized_config needs project)
    container_skip_reason,
    project,
    scratch,
    synthesized_config,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def example_image() -> Callable[[str], str]:
    """Builds `examples/<name>/Dockerfile` from the repository root, as its README says."""
    reason = container_skip_reason()
    if reason:
        pytest.skip(f"no container engine: {reason}")
    engine.ensure_running()

    def _build(name: str) -> str:
        return engine.build_image(f"mnp-example-{name}:local",
                                  dockerfile=REPO / "examples" / name / "Dockerfile",
                                  base_arg="BASE_IMAGE")

    return _build
