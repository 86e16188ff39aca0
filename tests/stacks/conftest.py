"""One synthesis per test session: loading the provider bindings costs ~4 s and ~600 MB."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from subprocess import Popen

import pytest

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = shutil.which("terraform")
SETTINGS_ENV = ("AWS_REGION", "CLUSTER_NAME", "INSTANCE_TYPES", "EFS_THROUGHPUT_MODE",
                "EFS_PROVISIONED_THROUGHPUT", "MAX_VCPUS", "ENABLE_EFA", "ENABLE_FSX")
EFA_ENV = {"ENABLE_EFA": "1", "INSTANCE_TYPES": "c5n.18xlarge,hpc7a.96xlarge"}
FSX_ENV = {"ENABLE_FSX": "1"}
# Logical-id fragments of the two node launch templates (the Spot one only with its queue).
MNP_TEMPLATE = "compute_launch_template"
SPOT_TEMPLATE = "compute_spot_launch_template"


def synth_stack(environ: dict[str, str]) -> dict:
    """Synthesize the platform stack for a given environment and parse the JSON."""
    from cdktf import Testing as CdktfTesting

    from stacks.config import PlatformConfig
    from stacks.platform_stack import PlatformStack

    app = CdktfTesting.app()
    # us-east-1 unless the test names a region: never the machine's own AWS profile.
    config = PlatformConfig.from_env({"AWS_REGION": "us-east-1", **environ})
    stack = PlatformStack(app, "test", config=config)
    return json.loads(CdktfTesting.synth(stack))


ENTRY_POINT_ENV = {"CLUSTER_NAME": "cfd-team", "INSTANCE_TYPES": "c5n.18xlarge",
                   "AWS_DEFAULT_REGION": "eu-north-1"}
# Dropped from the entry point's environment: the region must come from ENTRY_POINT_ENV.
ENTRY_POINT_DROPS = ("AWS_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE")


_ENTRY: list[tuple[Path, Popen[str]]] = []


def pytest_configure(config: pytest.Config) -> None:
    """Start `python main.py` (make synth's recipe) with ENTRY_POINT_ENV set, in a scratch dir.

    Called as soon as pytest reaches this folder, so that process's ~4 s load of the provider
    bindings overlaps this one's (collecting the stack tests imports them): two cores, one
    load's time instead of two. Not when the run leaves out `slow` tests (make test-fast), which
    would kill it unused; the fixture starts it then if asked.
    """
    if "not slow" not in (config.getoption("markexpr", "") or ""):
        _start_entry_point()


def _start_entry_point() -> None:
    """`python main.py` with ENTRY_POINT_ENV in a scratch directory, recorded in _ENTRY."""
    out = Path(tempfile.mkdtemp(prefix="stack-entry-point-"))
    env = {**{k: v for k, v in os.environ.items() if k not in ENTRY_POINT_DROPS},
           **ENTRY_POINT_ENV, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(REPO / "main.py")], cwd=out, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    _ENTRY.append((out, proc))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the entry-point run if no test waited for it, and remove its directory."""
    for out, proc in _ENTRY:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def entry_point() -> tuple[Path, Popen[str]]:
    """The entry-point run started at configure time: (its working directory, process)."""
    if not _ENTRY:
        _start_entry_point()
    return _ENTRY[0]


@pytest.fixture(scope="session")
def synthesized() -> dict:
    """The stack with every setting at its default (no settings in the environment)."""
    return synth_stack({})


@pytest.fixture(scope="session")
def synthesized_efa() -> dict:
    """The stack synthesized with ENABLE_EFA=1 (and two EFA-capable instance types)."""
    return synth_stack(EFA_ENV)


@pytest.fixture(scope="session")
def synthesized_fsx() -> dict:
    """The stack synthesized with ENABLE_FSX=1."""
    return synth_stack(FSX_ENV)


@pytest.fixture(scope="session")
def synthesized_raw(synthesized: dict) -> str:
    """The same stack as Terraform JSON text, for tools that read files."""
    return json.dumps(synthesized, indent=2, sort_keys=True)


@pytest.fixture(scope="session")
def synthesized_dir(synthesized_raw: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the synthesized stack as cdk.tf.json."""
    out = tmp_path_factory.mktemp("stack")
    (out / "cdk.tf.json").write_text(synthesized_raw)
    return out


def run_terraform(work: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real terraform CLI in `work`, offline: no checkpoint, no user CLI config."""
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
           "TF_CLI_CONFIG_FILE": str(work / "none.tfrc")}
    return subprocess.run([TERRAFORM, *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=timeout)


def resources(stack: dict, type_: str) -> list[dict]:
    """All resources of one Terraform type."""
    return list(stack.get("resource", {}).get(type_, {}).values())


def only(stack: dict, type_: str, name_contains: str = "", block: str = "resource") -> dict:
    """The single resource (or data source) of a type whose logical id contains a fragment."""
    found = [r for key, r in stack.get(block, {}).get(type_, {}).items()
             if name_contains in key]
    assert len(found) == 1, f"expected one {type_} matching {name_contains!r}, got {len(found)}"
    return found[0]


def batch_event(status: str, queue_arn: str, reason: str = "") -> dict:
    """A "Batch Job State Change" event as the Batch user guide shows it (batch_cwe_events)."""
    return {"version": "0", "id": "c8f9c4b5-76e5-d76a-f980-7011e206042b",
            "detail-type": "Batch Job State Change", "source": "aws.batch",
            "account": "123456789012", "time": "2026-12-07T12:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:batch:us-east-1:123456789012:job/4c7599ae"],
            "detail": {"jobName": "heat", "jobId": "4c7599ae", "jobQueue": queue_arn,
                       "status": status, "statusReason": reason, "attempts": [],
                       "createdAt": 1, "jobDefinition": "arn:aws:batch:...:job-definition/x:1",
                       "tags": {"mnp:min-nodes": "2"}}}
