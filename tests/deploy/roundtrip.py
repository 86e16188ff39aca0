"""One stack variant through the real terraform CLI against the AWS emulator: synth to destroy.

Every step runs as a user runs it (`make synth`'s recipe, then terraform in the synthesized
directory) and prints Terraform's own output, each line prefixed with the variant's name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tests.deploy import provider as providers

REPO = Path(__file__).resolve().parents[2]
STACK = "mnp-batch"
REGION = "us-east-1"
TERRAFORM = shutil.which("terraform") or "terraform"
# Terraform retries a failing call for minutes (shared FACTS); a hung step is a failed one.
STEP_TIMEOUT = 600


@dataclass(frozen=True)
class Variant:
    """A stack configuration of the round trip: its synth environment, state in S3 or not."""

    name: str
    env: dict[str, str]
    state_bucket: str = ""
    destroy_timeout: float = STEP_TIMEOUT
    tfvars: dict[str, object] = field(default_factory=dict)  # Terraform variables a user sets


@dataclass
class Step:
    """One finished command: its words, exit code, output and duration."""

    args: list[str]
    code: int
    out: str
    seconds: float


@dataclass
class RoundTrip:
    """A project directory of its own for one variant, and the emulator it talks to."""

    variant: Variant
    root: Path
    endpoint: str
    log: TextIO = sys.stdout
    steps: list[Step] = field(default_factory=list)
    mapped: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def workdir(self) -> Path:
        """Where `make synth` leaves the stack and where a user runs terraform."""
        return self.root / "cdktf.out" / "stacks" / STACK

    def aws_env(self) -> dict[str, str]:
        """Credentials and endpoint of the emulator only: no profile of the machine leaks in."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
        return {**env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_CONFIG_FILE": str(self.root / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(self.root / "no-aws-credentials"),
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "2",
                "TF_CLI_CONFIG_FILE": str(self.root / "terraform.rc"),
                "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}

    def say(self, line: str) -> None:
        """One line of this variant's output."""
        with self.lock:
            print(f"[{self.variant.name}] {line}", file=self.log, flush=True)

    def run(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = STEP_TIMEOUT, stderr: int | None = subprocess.STDOUT) -> Step:
        """A command whose output is printed as it comes and kept (stderr with it, or not)."""
        self.say("$ " + " ".join(args))
        started = time.monotonic()
        proc = subprocess.Popen(args, cwd=cwd or self.workdir, env=env or self.aws_env(),
                                stdout=subprocess.PIPE, stderr=stderr, text=True,
                                stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            self.say(line.rstrip("\n"))
        code = proc.wait()
        timer.cancel()
        step = Step(list(args), code, "".join(lines), time.monotonic() - started)
        self.steps.append(step)
        return step

    def terraform(self, *args: str, timeout: float = STEP_TIMEOUT) -> Step:
        """The real terraform CLI in the synthesized stack's directory."""
        return self.run(TERRAFORM, *args, "-no-color",
                        timeout=timeout)

    def synth(self) -> Step:
        """`make synth`'s recipe in this project directory, then the provider this machine has."""
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "cdktf.json", self.root / "cdktf.json")
        env = {**self.aws_env(), **self.variant.env, "PYTHONPATH": str(REPO)}
        step = self.run(sys.executable, str(REPO / "main.py"), cwd=self.root, env=env)
        if step.code != 0:
            return step
        stack_file = self.workdir / "cdk.tf.json"
        stack = json.loads(stack_file.read_text())
        chosen = providers.choose(stack["terraform"]["required_providers"]["aws"]["version"])
        stack, self.mapped = providers.map_back(stack, chosen)
        for line in self.mapped:
            self.say(f"provider mapping (test harness only): {line}")
        stack_file.write_text(json.dumps(stack, indent=2))
        (self.root / "terraform.rc").write_text(chosen.cli_config())
        # Terraform's override files (developer.hashicorp.com/terraform/language/files/override)
        # add to the stack's provider block without editing it: S3 by path on one host.
        (self.workdir / "emulator_override.tf.json").write_text(json.dumps(
            {"provider": {"aws": {"s3_use_path_style": True}}}))
        if self.variant.tfvars:
            # Loaded by every plan and apply in the directory, as a user's own would be
            # (developer.hashicorp.com/terraform/language/values/variables, .tfvars files).
            (self.workdir / "terraform.tfvars.json").write_text(json.dumps(self.variant.tfvars))
        return step

    def init(self) -> Step:
        """terraform init; an S3 backend reaches the emulator's bucket by path."""
        backend = ["-backend-config=use_path_style=true"] if self.variant.state_bucket else []
        return self.terraform("init", "-input=false", *backend)

    def outputs(self) -> dict[str, object]:
        """`terraform output -json` as values."""
        step = self.terraform("output", "-json", timeout=120)
        assert step.code == 0, step.out
        return {k: v["value"] for k, v in json.loads(step.out).items()}

    def planned_resources(self) -> int:
        """How many resources the configuration declares, as `terraform plan` counts them."""
        step = self.terraform("plan", "-input=false", "-out=round-trip.plan")
        assert step.code == 0, step.out
        shown = subprocess.run([TERRAFORM, "show", "-json",
                                "round-trip.plan"], cwd=self.workdir, env=self.aws_env(),
                               capture_output=True, text=True, timeout=120, check=True)
        changes = json.loads(shown.stdout).get("resource_changes", [])
        return sum(1 for c in changes
                   if c["mode"] == "managed" and "create" in c["change"]["actions"])

    def state_resources(self) -> list[str]:
        """The managed resources terraform holds in state."""
        step = subprocess.run([TERRAFORM, "state", "list"],
                              cwd=self.workdir, env=self.aws_env(), capture_output=True,
                              text=True, timeout=120)
        return [line for line in step.stdout.splitlines() if not line.startswith("data.")]

    def jobs(self, *args: str) -> Step:
        """`python -m jobs` as a user runs it from the project directory (stdout kept apart)."""
        env = {**self.aws_env(), "PYTHONPATH": str(REPO), "COLUMNS": "120"}
        return self.run(sys.executable, "-m", "jobs", *args, cwd=self.root, env=env,
                        timeout=300, stderr=None)
