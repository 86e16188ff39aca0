"""The stack's staging jobs beside a container job: `python -m staging` in a container of the
stack's own image (never the job's), on the job's own network, with the job's EFS stand-in.

As on Batch, where the stage-in job runs before the multi-node job (dependsOn) and an
EventBridge rule submits the stage-out job when it ends: same image, same command line
(staging.commands), same entry point (the image's `mnp-launch`, one node, one slot; Batch
job definitions cannot replace an ENTRYPOINT), the access point's user. The S3 endpoint is
an emulator's (AWS_ENDPOINT_URL): a container named by the endpoint's host (a moto server,
emulator/s3/Dockerfile) is connected to the job's network for the run, so only the job's
network reaches it.
"""

from __future__ import annotations

import subprocess
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emulator.containers import ContainerJob
from emulator.engine import REPO, docker
from launcher.contract import RANKS_PER_NODE_ENV

S3_IMAGE = "mnp-s3:local"
S3_DOCKERFILE = REPO / "emulator" / "s3" / "Dockerfile"
S3_PORT = 5000  # emulator/s3/Dockerfile's moto_server --port
# What boto3 in the staging container needs to sign requests to an emulator (never real keys).
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_REGION": "us-east-1"}


@dataclass
class StagingRun:
    """One staging job's container: its command, exit code and output."""

    argv: list[str]
    code: int
    output: str
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class LocalStaging:
    """Staging containers of `image` against the S3 emulator at `endpoint`."""

    image: str
    endpoint: str
    timeout: float = 3600
    runs: list[StagingRun] = field(default_factory=list)

    @property
    def endpoint_container(self) -> str | None:
        """The local container serving the endpoint (None: the endpoint is elsewhere)."""
        host = urllib.parse.urlsplit(self.endpoint).hostname or ""
        found = docker("ps", "-q", "--filter", f"name=^{host}$", check=False).stdout.strip()
        return host if host and found else None

    def attach(self, job: ContainerJob) -> None:
        """Connect the endpoint's container to `job`'s network (until `detach`)."""
        name = self.endpoint_container
        if name:
            docker("network", "connect", job.network, name)

    def detach(self, job: ContainerJob) -> None:
        """Disconnect it again, so the job's network can go."""
        name = self.endpoint_container
        if name:
            docker("network", "disconnect", "-f", job.network, name, check=False)

    def run(self, job: ContainerJob, argv: Sequence[str], what: str) -> StagingRun:
        """`argv` in a staging container on `job`'s network; its log goes beside the nodes'."""
        run = StagingRun(list(argv), -1, "")
        uid, gid = job.job.owner
        env = {**DUMMY_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint,
               "AWS_BATCH_JOB_ID": run.job_id, "AWS_BATCH_JOB_ATTEMPT": "1",
               "AWS_BATCH_CE_NAME": "local", "AWS_BATCH_JQ_NAME": "local",
               RANKS_PER_NODE_ENV: "1"}
        name = f"{job.network}-{what}"
        docker("create", "--name", name, "--network", job.network, *job.labels(),
               "--user", f"{uid}:{gid}", *job.efs_mounts(),
               *(a for k, v in env.items() for a in ("-e", f"{k}={v}")), self.image, *argv)
        try:
            docker("start", name)
            waited = subprocess.run(["docker", "wait", name], capture_output=True, text=True,
                                    timeout=self.timeout, check=True)
            run.code = int(waited.stdout.strip())
        finally:
            logs = docker("logs", name, check=False)
            run.output = logs.stdout + logs.stderr
            docker("rm", "-f", name, check=False)
        self._keep_log(job.log_dir, what, run)
        self.runs.append(run)
        return run

    @staticmethod
    def _keep_log(log_dir: Path, what: str, run: StagingRun) -> None:
        """The staging job's CloudWatch stream stand-in: staging/<what>/<its job id>."""
        path = log_dir / "staging" / what / run.job_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run.output)
