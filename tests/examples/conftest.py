"""Example images built in the local engine; the stack's job definition from the emulator's
fixtures (imported so pytest sees them here too)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from emulator import engine
from tests.conftest import synth_project
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


# The stack an EFA user synthesizes (README: ENABLE_EFA=1 with EFA-capable instance types).
EFA_SETTINGS = {"ENABLE_EFA": "1", "INSTANCE_TYPES": "c5n.18xlarge", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def efa_config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The ENABLE_EFA=1 stack's Terraform JSON (its job definition: MNP_NETWORK=efa, the OFI
    settings and MNP_PRECHECK=1)."""
    out = tmp_path_factory.mktemp("efa-project")
    stack = synth_project(out, EFA_SETTINGS, drop=("CLUSTER_NAME", "MAX_VCPUS"))
    return json.loads(stack.read_text())
