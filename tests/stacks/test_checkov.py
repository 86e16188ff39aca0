"""checkov's AWS policies over the synthesized Terraform JSON: no failed check, no idle skip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.stacks.conftest import REPO

CHECKOV = Path(sys.executable).with_name("checkov")
CONFIG = REPO / ".checkov.yaml"


def _checkov(directory: Path, *options: str) -> dict:
    proc = subprocess.run(
        [str(CHECKOV), *options, "-d", str(directory), "--framework", "terraform_json",
         "--skip-download", "--output", "json", "--quiet"],
        # Not from the repository: checkov would pick up .checkov.yaml there on its own.
        cwd=directory, capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    # checkov prints [] when it has nothing to report; a parsing error must not pass as clean.
    assert isinstance(report, dict), proc.stdout[:500]
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    return report


def _skips() -> list[str]:
    return yaml.safe_load(CONFIG.read_text())["skip-check"]


def test_checkov_finds_no_failed_check(synthesized_dir: Path) -> None:
    report = _checkov(synthesized_dir, "--config-file", str(CONFIG))
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 100  # checkov really parsed the stack


def test_every_skip_is_needed_and_justified(synthesized_dir: Path) -> None:
    report = _checkov(synthesized_dir)
    failing = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert failing == set(_skips())  # each skip hides a real finding, and nothing else fails
    lines = CONFIG.read_text().splitlines()
    for check_id in _skips():
        at = lines.index(f"  - {check_id}")
        reason = lines[at - 1].strip()
        assert reason.startswith("#") and len(reason) > 20, f"{check_id} has no reason above it"
        assert any(check_id in line for line in lines[max(0, at - 6):at]), check_id
