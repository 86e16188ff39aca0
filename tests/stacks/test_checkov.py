"""checkov's AWS policies over the synthesized Terraform JSON: no failed check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHECKOV = Path(sys.executable).with_name("checkov")


def test_checkov_finds_no_failed_check(synthesized_dir: Path) -> None:
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(synthesized_dir), "--framework", "terraform_json",
         "--skip-download", "--output", "json", "--quiet"],
        capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == [] and proc.returncode == 0, failed
    assert summary["passed"] > 100  # checkov really parsed the stack
    assert summary["skipped"] == 0
