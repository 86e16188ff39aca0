"""Where resource names come from: flags, environment, the stack's Terraform outputs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from jobs.errors import InvalidInput
from jobs.outputs import Settings, load_outputs_file, terraform_outputs

STATE = {"version": 4, "terraform_version": "1.11.4", "serial": 1,
         "lineage": "3f1c2d4e-0000-0000-0000-000000000000", "resources": [],
         "outputs": {"job_queue_name": {"value": "queue-from-state", "type": "string"},
                     "max_vcpus": {"value": 256, "type": "number"}}}


def synthesized_project(root: Path) -> Path:
    """What `make synth` plus a local-backend deploy leave behind (cdktf.out + state file)."""
    (root / "cdktf.json").write_text("{}")
    stack_dir = root / "cdktf.out" / "stacks" / "mnp-batch"
    stack_dir.mkdir(parents=True)
    (root / "cdktf.out" / "manifest.json").write_text(json.dumps({"version": "0.21.0", "stacks": {
        "mnp-batch": {"name": "mnp-batch", "workingDirectory": "stacks/mnp-batch"}}}))
    (stack_dir / "cdk.tf.json").write_text(json.dumps({
        "terraform": {"backend": {"local": {"path": "../../../terraform.mnp-batch.tfstate"}}},
        "output": {"job_queue_name": {"value": "x"}, "max_vcpus": {"value": 1}}}))
    (root / "terraform.mnp-batch.tfstate").write_text(json.dumps(STATE))
    return stack_dir


def test_cdktf_outputs_file(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"mnp-batch": {"job_queue_name": "q", "max_vcpus": 32}}))
    outputs = load_outputs_file(path)
    assert (outputs.get("job_queue_name"), outputs.get("max_vcpus")) == ("q", 32)
    assert "stack mnp-batch" in outputs.source


def test_outputs_file_in_terraform_format(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(STATE["outputs"]))
    assert load_outputs_file(path).get("job_queue_name") == "queue-from-state"


def test_several_stacks_need_a_choice(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"a": {"job_queue_name": "qa"}, "b": {"job_queue_name": "qb"}}))
    with pytest.raises(InvalidInput, match="has 2 stacks"):
        load_outputs_file(path)
    assert load_outputs_file(path, "b").get("job_queue_name") == "qb"


def test_unreadable_outputs_file(tmp_path):
    with pytest.raises(InvalidInput, match="cannot read stack outputs file"):
        load_outputs_file(tmp_path / "missing.json")


def test_state_file_of_an_uninitialized_stack(tmp_path):
    synthesized_project(tmp_path)
    outputs = terraform_outputs(tmp_path)
    assert outputs.get("job_queue_name") == "queue-from-state"
    assert "state file" in outputs.source


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_output_in_the_stack_directory(tmp_path):
    stack_dir = synthesized_project(tmp_path)
    subprocess.run(["terraform", "init", "-input=false"], cwd=stack_dir, check=True,
                   capture_output=True, timeout=120)
    outputs = terraform_outputs(tmp_path)
    assert outputs.source.startswith("terraform output in")
    assert (outputs.get("job_queue_name"), outputs.get("max_vcpus")) == ("queue-from-state", 256)


def test_no_synthesized_stack(tmp_path):
    outputs = terraform_outputs(tmp_path)
    assert outputs.values == {}
    assert "manifest.json" in outputs.source


def test_precedence_flag_env_output(tmp_path, monkeypatch):
    synthesized_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    args = ("JOB_QUEUE_NAME", "job_queue_name", "--job-queue")
    assert settings.resolve(None, *args) == "queue-from-state"
    assert settings.max_vcpus() == 256
    monkeypatch.setenv("JOB_QUEUE_NAME", "queue-from-env")
    monkeypatch.setenv("MAX_VCPUS", "48")  # synth's setting: the deployed output still wins
    assert settings.resolve(None, *args) == "queue-from-env"
    assert settings.max_vcpus() == 256
    assert settings.resolve("queue-from-flag", *args) == "queue-from-flag"


def test_cli_reads_the_synthesized_stack_from_cwd(aws, tmp_path):
    """No outputs file: the CLI finds cdktf.out from the working directory."""
    synthesized_project(tmp_path)
    env = aws.env(MAX_VCPUS="")
    del env["JOBS_OUTPUTS_FILE"]
    result = aws.cli("submit", "--job-name", "h", "--nodes", "2", "--vcpus", "4", "--memory",
                     "64", "--job-definition", "mnp-batch-mpi", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["jobQueue"] == "queue-from-state"
    too_big = aws.cli("submit", "--job-name", "h", "--nodes", "65", "--vcpus", "4", "--memory",
                      "64", "--job-definition", "mnp-batch-mpi", "--dry-run", env=env)
    assert too_big.returncode == 2
    assert "exceeds the compute environment's max_vcpus 256" in too_big.stderr


def test_warns_when_max_vcpus_is_unknown(aws, tmp_path):
    (tmp_path / "cdktf.json").write_text("{}")
    env = aws.env(JOB_QUEUE_NAME="q", JOB_DEFINITION_NAME="d")
    aws.outputs_file.unlink()
    del env["JOBS_OUTPUTS_FILE"]
    result = aws.cli("submit", "--job-name", "h", "--nodes", "2", "--vcpus", "4", "--memory",
                     "64", "--dry-run", env=env)
    assert result.returncode == 0
    assert "warning: max_vcpus unknown" in result.stderr
    assert aws.requests() == []


def test_deploy_outputs_json_in_the_project_root(tmp_path, monkeypatch):
    (tmp_path / "cdktf.json").write_text("{}")
    (tmp_path / "outputs.json").write_text(json.dumps({"mnp-batch": {"job_queue_name": "q1"}}))
    monkeypatch.chdir(tmp_path)
    assert Settings().resolve(None, "JOB_QUEUE_NAME", "job_queue_name", "--job-queue") == "q1"


def _fifo(path: Path) -> None:
    import os

    os.mkfifo(path)


def _deep_dicts(path: Path) -> None:
    nested: dict = {"job_queue_name": {"value": "q"}}
    for _ in range(40):
        nested = {"construct": nested}
    path.write_text(json.dumps(nested))


# Issue 24's hostile outputs files: each one line naming the file, no hang, no traceback.
@pytest.mark.parametrize(("make", "says"), [
    (_fifo, "is not a regular file (a FIFO)"),
    (lambda p: p.write_text("[" * 200_000), "nested too deeply"),
    (_deep_dicts, "nested more than 32 levels deep"),
    (lambda p: p.mkdir(), "is not a regular file (a directory)"),
])
def test_hostile_outputs_file_is_refused_in_one_line(tmp_path, make, says):
    path = tmp_path / "outputs.json"
    make(path)
    with pytest.raises(InvalidInput, match=re.escape(says)):
        load_outputs_file(path)


# What terraform 1.11 prints when `output` runs in a directory whose backend changed (colours on).
TF_ERROR = ("\x1b[31m╷\x1b[0m\x1b[0m\n\x1b[31m│\x1b[0m \x1b[0m\x1b[1m\x1b[31mError: \x1b[0m\x1b[0m"
            "\x1b[1mBackend initialization required, please run \"terraform init\"\x1b[0m\n"
            "\x1b[31m│\x1b[0m \x1b[0m\n\x1b[31m│\x1b[0m \x1b[0mReason: Initial configuration of "
            "the requested backend \"s3\"\n\x1b[31m│\x1b[0m \x1b[0mwhich was not there before.\n"
            "\x1b[31m╵\x1b[0m\x1b[0m\n")


def test_a_failing_terraform_output_is_reported_whole_without_colour_codes(tmp_path,
                                                                           monkeypatch):
    stack_dir = synthesized_project(tmp_path)
    (tmp_path / "terraform.mnp-batch.tfstate").unlink()  # nothing to fall back on
    (stack_dir / ".terraform").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "tf-error").write_text(TF_ERROR)
    fake = bin_dir / "terraform"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/tf-args\ncat {tmp_path}/tf-error >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    outputs = terraform_outputs(tmp_path)
    assert outputs.values == {}
    assert outputs.source == (
        "no outputs for stack mnp-batch: `terraform output` failed (exit 1): Error: Backend "
        "initialization required, please run \"terraform init\" Reason: Initial configuration "
        "of the requested backend \"s3\" which was not there before.")
    assert (tmp_path / "tf-args").read_text().split() == ["output", "-json", "-no-color"]
