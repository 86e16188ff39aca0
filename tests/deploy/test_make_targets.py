"""`make deploy` and `make destroy` refuse a Terraform CLI too old for the stack, in one line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _make_with_terraform(tmp_path: Path, version_line: str | None) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if version_line is not None:
        fake = bin_dir / "terraform"
        fake.write_text(f"#!/bin/sh\necho '{version_line}'\n")
        fake.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), *(p for p in os.environ["PATH"].split(os.pathsep)
                                            if not (Path(p) / "terraform").exists())])
    return subprocess.run(["make", "--no-print-directory", "-s", "terraform-version"], cwd=REPO,
                          env={**os.environ, "PATH": path}, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("line", ["Terraform v1.10.5", "Terraform v1.5.7", "Terraform v0.15.0"])
def test_older_than_1_11_is_refused_naming_both_versions(tmp_path: Path, line: str) -> None:
    # Write-only arguments (the rendezvous key's secret_string_wo) need Terraform 1.11
    # (developer.hashicorp.com/terraform/language/resources/ephemeral#write-only-arguments).
    proc = _make_with_terraform(tmp_path, line)
    assert proc.returncode != 0
    version = line.split("v", 1)[1]
    assert proc.stdout.strip() == (
        f"error: Terraform {version} is too old: this stack needs Terraform >= 1.11.0")


@pytest.mark.parametrize("line", ["Terraform v1.11.0", "Terraform v1.11.4", "Terraform v1.14.2"])
def test_1_11_and_newer_pass(tmp_path: Path, line: str) -> None:
    proc = _make_with_terraform(tmp_path, line)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_terraform_says_what_to_install(tmp_path: Path) -> None:
    proc = _make_with_terraform(tmp_path, None)
    assert proc.returncode != 0
    assert proc.stdout.strip() == "error: no terraform CLI on PATH: install Terraform >= 1.11.0"
