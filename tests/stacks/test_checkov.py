"""checkov's AWS policies over the synthesized Terraform JSON: no failed check, no idle skip."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.stacks.conftest import REPO

CHECKOV = Path(sys.executable).with_name("checkov")
CONFIG = REPO / ".checkov.yaml"
# Skips only the ENABLE_EFA=1 stack needs (reasons in .checkov.yaml): on the default and the
# ENABLE_FSX=1 stacks these checks must pass.
EFA_ONLY_SKIPS = {"CKV2_AWS_12"}
# checkov loads its ~2,000 policies per run (~50 s for this module)
pytestmark = pytest.mark.slow


def _checkov(directory: Path, *options: str) -> dict:
    proc = subprocess.run(
        [str(CHECKOV), *options, "-d", str(directory), "--framework", "terraform_json",
         "--skip-download", "--output", "json", "--quiet"],
        # Not from the repository: checkov would pick up .checkov.yaml there on its own.
        cwd=directory, capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    # checkov prints [] when it has nothing to report; a parsing error must not pass as clean,
    # nor a check that crashed on a resource (logged, then left out of the counts).
    assert isinstance(report, dict), proc.stdout[:500]
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    assert "Failed to run check" not in proc.stderr and "Failed to add block" not in proc.stderr, (
        proc.stderr[-2000:])
    return report


def _expand_dynamic(stack: dict) -> dict:
    """Each `dynamic` block replaced by one block of its content, as checkov renders them."""
    # checkov 3.3.30 cannot read dynamic blocks in Terraform JSON: process_dynamic_values
    # iterates the parser's __startline__ keys as block names and crashes, so the launch
    # template's checks (IMDSv2, encryption) would silently not run.
    expanded = copy.deepcopy(stack)
    for blocks in expanded.get("resource", {}).values():
        for block in blocks.values():
            for name, dynamic in block.pop("dynamic", {}).items():
                block[name] = [dynamic["content"]]
    return expanded


@pytest.fixture(params=["default", "efa", "fsx"])
def stack(request: pytest.FixtureRequest, synthesized_dir: Path,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The default stack, the ENABLE_EFA=1 one and the ENABLE_FSX=1 one: (name, directory
    holding cdk.tf.json)."""
    if request.param == "default":
        return request.param, synthesized_dir
    out = tmp_path_factory.mktemp(f"stack-{request.param}")
    expanded = _expand_dynamic(request.getfixturevalue(f"synthesized_{request.param}"))
    (out / "cdk.tf.json").write_text(json.dumps(expanded, indent=2, sort_keys=True))
    return request.param, out


def _skips() -> list[str]:
    return yaml.safe_load(CONFIG.read_text())["skip-check"]


def test_checkov_finds_no_failed_check(stack: tuple[str, Path]) -> None:
    report = _checkov(stack[1], "--config-file", str(CONFIG))
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 100  # checkov really parsed the stack


def test_every_skip_is_needed_and_justified(stack: tuple[str, Path]) -> None:
    name, directory = stack
    report = _checkov(directory)
    failing = {c["check_id"] for c in report["results"]["failed_checks"]}
    needed = set(_skips()) - (EFA_ONLY_SKIPS if name != "efa" else set())
    assert failing == needed  # each skip hides a real finding, and nothing else fails
    lines = CONFIG.read_text().splitlines()
    for check_id in _skips():
        at = lines.index(f"  - {check_id}")
        reason = lines[at - 1].strip()
        assert reason.startswith("#") and len(reason) > 20, f"{check_id} has no reason above it"
        assert any(check_id in line for line in lines[max(0, at - 6):at]), check_id
