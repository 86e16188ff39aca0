"""The real image in the local engine and the stack's job definition exactly as synthesized."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from emulator import engine
from emulator.jobdef import LocalJob, access_point_owner, apply_request, multinode_definition
from jobs.request import JobSpec, submit_request
from tests.conftest import synth_project

REPO = Path(__file__).resolve().parents[2]


def container_skip_reason() -> str | None:
    """Why containers cannot run here: only a machine where no engine can be started."""
    reason = engine.unavailable_reason()
    if reason is None and shutil.which("nsenter") is None:
        reason = "nsenter (util-linux) is not installed"
    return reason


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory holding `make synth`'s output for the default settings."""
    out = tmp_path_factory.mktemp("project")
    synth_project(out, {"AWS_REGION": "us-east-1"},
                  drop=("CLUSTER_NAME", "INSTANCE_TYPES", "MAX_VCPUS", "ENABLE_EFA"))
    return out


@pytest.fixture(scope="session")
def synthesized_config(project: Path) -> dict:
    """The synthesized stack's Terraform JSON."""
    return json.loads((project / "cdktf.out" / "stacks" / "mnp-batch" / "cdk.tf.json")
                      .read_text())


@pytest.fixture(scope="session")
def image() -> str:
    """Our Dockerfile built in the local engine (on the stand-in base made once)."""
    reason = container_skip_reason()
    if reason:
        pytest.skip(f"no container engine: {reason}")
    engine.ensure_running()
    # tagged by content: another checkout building beside this one cannot retag it
    return engine.build_image(f"mnp-solver:test-{engine.context_digest()}")


@pytest.fixture
def scratch() -> Path:
    """A scratch directory the containers' uid can use (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="mnp-containers-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def batch_job(config: dict, nodes: int, command: list[str], name: str = "test") -> LocalJob:
    """The containers Batch would start for `submit --nodes N --vcpus 1 -- command`."""
    definition = multinode_definition(config)
    spec = JobSpec(name=name, queue="local", definition=definition["jobDefinitionName"],
                   nodes=nodes, vcpus=1, memory=1024, output_path="/mnt/efs/out",
                   command=tuple(command))
    return apply_request(definition, submit_request(spec), access_point_owner(config))
