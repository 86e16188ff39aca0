"""The whole round trip of one variant, every stage recorded even when an earlier one failed.

apply, second plan, the jobs CLI on what Terraform made, destroy: destroy runs whatever happened
before it, so a failed stage never leaves the emulator holding a half-made stack unchecked.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tests.deploy import emulator_process, inventory
from tests.deploy.emulator_process import client
from tests.deploy.roundtrip import REGION, STEP_TIMEOUT, RoundTrip, Step, Variant

# The state lock Terraform's S3 backend writes beside the state (use_lockfile:
# developer.hashicorp.com/terraform/language/backend/s3#state-locking): "<key>.tflock".
LOCK_SUFFIX = ".tflock"
FSX_DELETE_DELAY = 600
FALLBACK_TYPES = "c6i.4xlarge,m5.large"
VARIANTS = (
    # Two fallback types (stacks/fallback.py), in failover order: their environments, placement
    # groups and queues apply, re-plan empty and destroy with the rest.
    Variant("default", {"FALLBACK_INSTANCE_TYPES": FALLBACK_TYPES}),
    # Two EFA-capable types offered together in us-east-1 (one network card, and two);
    # max vCPUs hold two nodes of the larger.
    Variant("efa", {"ENABLE_EFA": "1", "INSTANCE_TYPES": "c5n.18xlarge,c6in.32xlarge",
                    "MAX_VCPUS": "256"}),
    # State in S3, with the audit and compliance switch on (CloudTrail, AWS Config), and the
    # Spot queue for gangs (its placement group, launch template, environment, queue and job
    # definition), a Terraform variable rather than a synth setting.
    Variant("s3-state", {"STATE_BUCKET": "mnp-roundtrip-tfstate", "CLUSTER_NAME": "s3state",
                         "ENABLE_COMPLIANCE": "1"}, state_bucket="mnp-roundtrip-tfstate",
            tfvars={"enable_spot_queue": True}),
    # FSx for Lustre linked to the data bucket, mounted through the node user data. Provider
    # 5.100.0 waits a fixed 10 minutes after DeleteFileSystem before it first asks whether a
    # Lustre file system is gone (waitFileSystemDeleted: Delay 10 min, PollInterval 10 s, read
    # from the binary: README "The FSx destroy wait"), so its destroy needs that on top.
    Variant("fsx", {"ENABLE_FSX": "1", "CLUSTER_NAME": "fsx"},
            destroy_timeout=STEP_TIMEOUT + FSX_DELETE_DELAY),
)


@dataclass
class Outcome:
    """What one variant's round trip found, stage by stage."""

    variant: Variant
    steps: dict[str, Step] = field(default_factory=dict)
    planned: int = -1
    in_state: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    jobs: dict[str, Step] = field(default_factory=dict)
    state_object: bool = False
    lock_refused: Step | None = None
    before: set[str] = field(default_factory=set)
    after: set[str] = field(default_factory=set)
    mapped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    emulator_log: str = ""

    @property
    def seconds(self) -> dict[str, float]:
        """Each stage's duration."""
        return {stage: step.seconds for stage, step in self.steps.items()}

    def attempt(self, stage: str, action: Callable[[], object]) -> bool:
        """Run one stage; an exception is recorded as that stage's failure, not raised."""
        try:
            action()
        except Exception as exc:  # the tests report it; the round trip goes on to destroy
            self.errors[stage] = f"{type(exc).__name__}: {exc}"
            return False
        return True


def _push_image(endpoint: str, repository_url: str, tag: str) -> None:
    """What `docker push` ends with: PutImage of a manifest (ecr/latest/APIReference/API_PutImage).

    The image itself is the user's to build and push; the test pushes only its manifest.
    """
    config = b'{"architecture":"amd64","os":"linux"}'
    manifest = {"schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "size": len(config),
                           "digest": "sha256:" + hashlib.sha256(config).hexdigest()},
                "layers": []}
    ecr = client("ecr", endpoint, REGION)
    ecr.put_image(repositoryName=repository_url.split("/", 1)[1], imageTag=tag,
                  imageManifest=json.dumps(manifest))


def _jobs_cli(trip: RoundTrip, outcome: Outcome) -> None:
    """preflight, submit, status, list and cancel on the stack's own queue and definition."""
    _push_image(trip.endpoint, str(outcome.outputs["ecr_repository_url"]),
                str(outcome.outputs["image_tag"]))
    outcome.jobs["preflight"] = trip.jobs("preflight", "--job-name", "roundtrip", "--nodes", "2",
                                          "--vcpus", "4",
                                          "--memory", "8192")
    submit = trip.jobs("submit", "--job-name", "roundtrip", "--nodes", "2", "--vcpus", "4",
                       "--memory", "8192", "--json")
    outcome.jobs["submit"] = submit
    if submit.code != 0:
        return
    job_id = json.loads(submit.out)["jobId"]
    outcome.jobs["status"] = trip.jobs("status", job_id, "--json")
    outcome.jobs["list"] = trip.jobs("list", "--json")
    outcome.jobs["cancel"] = trip.jobs("cancel", job_id, "--reason", "round trip")
    outcome.jobs["after cancel"] = trip.jobs("status", job_id, "--json")


def _state_lock(trip: RoundTrip, outcome: Outcome) -> None:
    """The state is in the bucket, and a lock file there stops another run (as a held lock)."""
    s3 = client("s3", trip.endpoint, REGION)
    backend = json.loads((trip.workdir / "cdk.tf.json").read_text())["terraform"]["backend"]
    key = backend["s3"]["key"]
    keys = [o["Key"] for o in s3.list_objects_v2(
        Bucket=trip.variant.state_bucket).get("Contents", [])]
    outcome.state_object = key in keys
    lock = {"ID": "another-run", "Operation": "OperationTypeApply", "Who": "someone@else",
            "Version": "1.11.4", "Path": f"{trip.variant.state_bucket}/{key}"}
    s3.put_object(Bucket=trip.variant.state_bucket, Key=key + LOCK_SUFFIX,
                  Body=json.dumps(lock).encode())
    outcome.lock_refused = trip.terraform("plan", "-input=false", "-lock-timeout=0s")
    s3.delete_object(Bucket=trip.variant.state_bucket, Key=key + LOCK_SUFFIX)


def _record(outcome: Outcome, stage: str, step: Step) -> Step:
    """Keep a stage's step (its exit code, output and duration) under its name."""
    outcome.steps[stage] = step
    return step


def _apply(trip: RoundTrip, outcome: Outcome) -> None:
    """synth, init, plan, apply, the second plan and the outputs; stops at the first failure."""
    if _record(outcome, "synth", trip.synth()).code != 0:
        return
    outcome.mapped = trip.mapped
    if _record(outcome, "init", trip.init()).code != 0:
        return
    outcome.planned = trip.planned_resources()
    applied = _record(outcome, "apply", trip.terraform("apply", "-auto-approve", "-input=false"))
    outcome.in_state = trip.state_resources()
    if applied.code == 0:
        _record(outcome, "second plan",
               trip.terraform("plan", "-detailed-exitcode", "-input=false"))
        outcome.outputs = trip.outputs()


def run(variant: Variant, root: Path, log: TextIO = sys.stdout) -> Outcome:
    """The round trip of one variant in a fresh emulated account; the directory is removed.

    Terraform's and the CLI's output go to `log` as they come."""
    outcome = Outcome(variant)
    root.mkdir(parents=True)
    with emulator_process.running(root / "emulator.log") as endpoint:
        trip = RoundTrip(variant, root, endpoint, log=log)
        if variant.state_bucket:
            client("s3", endpoint, REGION).create_bucket(Bucket=variant.state_bucket)
        outcome.before = inventory.read(endpoint, REGION)
        outcome.attempt("apply", lambda: _apply(trip, outcome))
        if outcome.outputs:
            outcome.attempt("jobs", lambda: _jobs_cli(trip, outcome))
            if variant.state_bucket:
                outcome.attempt("state lock", lambda: _state_lock(trip, outcome))
        if "init" in outcome.steps and outcome.steps["init"].code == 0:
            outcome.attempt("destroy", lambda: _record(outcome, "destroy", trip.terraform(
                "destroy", "-auto-approve", "-input=false", timeout=variant.destroy_timeout)))
        outcome.after = inventory.read(endpoint, REGION)
    outcome.emulator_log = (root / "emulator.log").read_text(errors="replace")
    shutil.rmtree(root, ignore_errors=True)
    return outcome
