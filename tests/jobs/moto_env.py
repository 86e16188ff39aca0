"""The moto endpoint the jobs tests talk to: seeded resources, the recorder, the CLI runner."""

from __future__ import annotations

import base64
import functools
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from tests.deploy import missing_apis
from tests.jobs.in_process import run_jobs

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
QUEUE = "mnp-batch-mpi"
DEFINITION = "mnp-batch-mpi"
SPOT_QUEUE = "mnp-batch-spot"
SPOT_DEFINITION = "mnp-batch-spot"
LOG_GROUP = "/aws/batch/mnp-batch"
REPOSITORY = "mnp-batch-solver"
REPOSITORY_URL = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}"
MAX_VCPUS = 64
INSTANCE_TYPE = "c6i.2xlarge"  # the stack's default: 8 vCPUs, 16 GiB
ZONE = f"{REGION}a"
STANDARD_QUOTA = "L-1216C47A"
# The data bucket and staging jobs of the stack (outputs as docs/CONTRACTS.md names them).
DATA_BUCKET = f"mnp-batch-data-{ACCOUNT}"
INPUT_PREFIX = "input/"
OUTPUT_PREFIX = "output/"
STAGING_QUEUE = "mnp-batch-staging"
STAGING_DEFINITION = "mnp-batch-staging"
# What moto does not model, read by the patched server (same process): EC2 vCPU quotas and
# Price List answers. Reset by every Aws.setup().
SEEDED_QUOTAS: dict[str, float] = {}
SEEDED_PRICES: dict[tuple[str, str], float] = {}
# Price List products of other services, as GetProducts returns them: (service code,
# attributes, unit, USD). Answered with TERM_MATCH's rule: every filter equals an attribute.
SEEDED_PRODUCTS: list[tuple[str, dict[str, str], str, float]] = []
# AWS requests the server has answered (counted by the patched server, conftest.py): a test
# that sent none, and did not reach into moto's backend, left the seeded state as it was.
SERVED = [0]


@dataclass
class Seed:
    """The seeded state on one server: the ids tests read, and SERVED when seeding ended."""

    url: str
    served: int
    launch_template_id: str
    instance_profile_arn: str
    security_group_id: str
    vpc_id: str


# The last seed; None after a test reached into moto's backend (its changes are not counted).
_SEED: list[Seed | None] = [None]


@functools.cache
def _clients(url: str) -> dict[str, Any]:
    """One client per service for the session: creating one costs ~0.1-0.3 s (its methods are
    built from the service model), six per test added minutes."""
    kwargs = {"endpoint_url": url, "region_name": REGION, "aws_access_key_id": "testing",
              "aws_secret_access_key": "testing"}
    return {name: boto3.client(name, **kwargs)
            for name in ("batch", "logs", "ecr", "iam", "ec2", "s3")}


def _post(url: str, data: bytes = b"") -> bytes:
    request = urllib.request.Request(url, data=data, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def job_definition_properties(image: str) -> dict[str, Any]:
    """The multi-node definition as the stack registers it (stacks/scheduling.py), trimmed."""
    return {
        "numNodes": 2,
        "mainNode": 0,
        "nodeRangeProperties": [{"targetNodes": "0:", "container": {
            "image": image,
            "command": ["python", "-m", "solver", "heat"],
            "resourceRequirements": [{"type": "VCPU", "value": "2"},
                                     {"type": "MEMORY", "value": "2048"}],
            "environment": [{"name": "MNP_RANKS_PER_NODE", "value": "2"},
                            {"name": "MNP_RENDEZVOUS_TIMEOUT", "value": "600"}],
            "mountPoints": [{"sourceVolume": "efs", "containerPath": "/mnt/efs"}],
            "volumes": [{"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": LOG_GROUP, "awslogs-stream-prefix": "mnp"}},
        }}],
    }


@dataclass
class Recorded:
    """One request the CLI sent, as moto's recorder saw it."""

    service: str
    operation: str
    body: dict[str, Any]
    headers: dict[str, str]
    url: str = ""


class Aws:
    """The moto endpoint with seeded resources, the recorder, and a way to run the CLI."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        clients = _clients(url)
        self.batch = clients["batch"]
        self.logs = clients["logs"]
        self.ecr = clients["ecr"]
        self.iam = clients["iam"]
        self.ec2 = clients["ec2"]
        self.s3 = clients["s3"]
        self.outputs_file = tmp_path / "outputs.json"
        self.launch_template_id = ""
        self.instance_profile_arn = ""
        self.security_group_id = ""
        self.vpc_id = ""

    def setup(self) -> None:
        """Fresh moto state: compute environment, queue, definition, log group, images.

        Seeding is ~20 requests (seconds on a busy machine), so the state is kept when the
        previous test sent no AWS request and did not touch moto's backend: it is then exactly
        as seeded. Any request (even a read) counts as a change.
        """
        SEEDED_QUOTAS.clear()
        SEEDED_QUOTAS[STANDARD_QUOTA] = 256.0
        SEEDED_PRICES.clear()
        SEEDED_PRICES[(INSTANCE_TYPE, REGION)] = 0.34
        SEEDED_PRODUCTS[:] = missing_apis.PRODUCTS  # FSx for Lustre PERSISTENT_2, us-east-1
        seed = _SEED[0]
        if seed is None or seed.url != self.url or seed.served != SERVED[0]:
            seed = self._seed()
            _SEED[0] = seed
        self.launch_template_id = seed.launch_template_id
        self.instance_profile_arn = seed.instance_profile_arn
        self.security_group_id = seed.security_group_id
        self.vpc_id = seed.vpc_id
        self.write_outputs()
        self.start_recording()

    def _seed(self) -> Seed:
        """Reset moto and create the stack's resources."""
        _post(f"{self.url}/moto-api/reset")
        _post(f"{self.url}/moto-api/config", json.dumps({"batch": {"use_docker": False}}).encode())
        self.iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")
        self.iam.create_instance_profile(InstanceProfileName="mnp-batch-node")
        self.instance_profile_arn = self.iam.get_instance_profile(
            InstanceProfileName="mnp-batch-node")["InstanceProfile"]["Arn"]
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.vpc_id = vpc
        self.security_group_id = self.ec2.create_security_group(
            GroupName="mnp-batch-compute", Description="nodes", VpcId=vpc)["GroupId"]
        self.launch_template_id = self.ec2.create_launch_template(
            LaunchTemplateName="mnp-batch-node", LaunchTemplateData={
                "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}},
        )["LaunchTemplate"]["LaunchTemplateId"]
        env = self.create_environment("mnp-batch-ce", ZONE)
        # The MPI queue, the optional single-node Spot queue and the staging jobs' queue.
        for queue in (QUEUE, SPOT_QUEUE, STAGING_QUEUE):
            self.batch.create_job_queue(
                jobQueueName=queue, state="ENABLED", priority=1,
                computeEnvironmentOrder=[{"order": 1,
                                          "computeEnvironment": env["computeEnvironmentArn"]}])
        self.batch.register_job_definition(
            jobDefinitionName=DEFINITION, type="multinode", platformCapabilities=["EC2"],
            nodeProperties=job_definition_properties(f"{REPOSITORY_URL}:v1"),
            retryStrategy={"attempts": 2}, propagateTags=True, tags={"project": "mnp-batch"})
        # The Spot queue's and the staging jobs' definitions are single-node (container) ones
        # (stacks/scheduling.py).
        container = job_definition_properties(f"{REPOSITORY_URL}:v1")["nodeRangeProperties"][0]
        self.batch.register_job_definition(
            jobDefinitionName=SPOT_DEFINITION, type="container", platformCapabilities=["EC2"],
            containerProperties=container["container"], propagateTags=True)
        self.batch.register_job_definition(
            jobDefinitionName=STAGING_DEFINITION, type="container", platformCapabilities=["EC2"],
            containerProperties={**container["container"],
                                 "command": ["python", "-m", "staging", "--help"]})
        self.s3.create_bucket(Bucket=DATA_BUCKET)
        self.logs.create_log_group(logGroupName=LOG_GROUP)
        self.ecr.create_repository(repositoryName=REPOSITORY)
        for tag in ("v1", "v2"):
            manifest = {"schemaVersion": 2,
                        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "config": {"digest": "sha256:" + tag[-1] * 64}, "layers": []}
            self.ecr.put_image(repositoryName=REPOSITORY, imageTag=tag,
                               imageManifest=json.dumps(manifest))
        return Seed(self.url, SERVED[0], self.launch_template_id, self.instance_profile_arn,
                    self.security_group_id, self.vpc_id)

    def create_environment(self, name: str, zone: str, instance_types: tuple[str, ...] = (
            INSTANCE_TYPE,), max_vcpus: int = MAX_VCPUS, desired_vcpus: int = 0,
            template_id: str | None = None, resource_type: str = "EC2") -> dict[str, Any]:
        """A MANAGED EC2 environment as the stack builds it: one subnet, placement group, LT."""
        cidr = f"10.0.{len(self.ec2.describe_subnets()['Subnets']) + 1}.0/24"
        subnet = self.ec2.create_subnet(VpcId=self.vpc_id, CidrBlock=cidr,
                                        AvailabilityZone=zone)["Subnet"]["SubnetId"]
        role = self.iam.get_role(RoleName="batch-service")["Role"]["Arn"]
        return self.batch.create_compute_environment(
            computeEnvironmentName=name, type="MANAGED", state="ENABLED", serviceRole=role,
            computeResources={
                "type": resource_type, "minvCpus": 0,
                **({"allocationStrategy": "BEST_FIT_PROGRESSIVE"} if resource_type == "EC2"
                   else {}),
                "maxvCpus": max_vcpus, "desiredvCpus": desired_vcpus,
                "instanceTypes": list(instance_types), "subnets": [subnet],
                "securityGroupIds": [self.security_group_id],
                "instanceRole": self.instance_profile_arn, "placementGroup": "mnp-batch-mpi",
                "launchTemplate": {"launchTemplateId": template_id or self.launch_template_id,
                                   "version": "1"}})

    def use_environment(self, name: str, zone: str = ZONE, **kwargs: Any) -> None:
        """Point the queue at a new compute environment (then recording starts afresh)."""
        env = self.create_environment(name, zone, **kwargs)
        self.batch.update_job_queue(jobQueue=QUEUE, computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])
        self.start_recording()

    def register_definition(self, **container: Any) -> None:
        """A new revision of the multi-node definition with container fields changed."""
        props = job_definition_properties(f"{REPOSITORY_URL}:v1")
        props["nodeRangeProperties"][0]["container"].update(container)
        self.batch.register_job_definition(
            jobDefinitionName=DEFINITION, type="multinode", platformCapabilities=["EC2"],
            nodeProperties=props, retryStrategy={"attempts": 2}, propagateTags=True)
        self.start_recording()

    def write_outputs(self, *, without: tuple[str, ...] = (), **changes: Any) -> None:
        """The file `cdktf deploy --outputs-file` would write for this stack (``without``:
        outputs an older stack does not have)."""
        values = {"job_queue_name": QUEUE, "job_definition_name": DEFINITION,
                  "max_vcpus": MAX_VCPUS, "efs_mount_path": "/mnt/efs",
                  "log_group_name": LOG_GROUP, "ecr_repository_url": REPOSITORY_URL,
                  "image_tag": "v1", "region": REGION, "spot_job_queue_name": SPOT_QUEUE,
                  "spot_job_definition_name": SPOT_DEFINITION, "data_bucket": DATA_BUCKET,
                  "data_input_prefix": INPUT_PREFIX, "data_output_prefix": OUTPUT_PREFIX,
                  "staging_job_queue_name": STAGING_QUEUE,
                  "staging_job_definition_name": STAGING_DEFINITION, **changes}
        values = {k: v for k, v in values.items() if k not in without}
        self.outputs_file.write_text(json.dumps({"mnp-batch": values}))

    def start_recording(self) -> None:
        """Forget everything recorded so far (the seeding above)."""
        _post(f"{self.url}/moto-api/recorder/reset-recording")
        _post(f"{self.url}/moto-api/recorder/start-recording")

    def requests(self, preflight: bool = False) -> list[Recorded]:
        """AWS requests since start_recording, in order: the preflight's reads (their user
        agent says preflight) only when asked for."""
        with urllib.request.urlopen(f"{self.url}/moto-api/recorder/download-recording") as r:
            lines = r.read().decode().splitlines()
        found = []
        for line in lines:
            entry = json.loads(line)
            if "/moto-api/" in entry["url"]:
                continue
            raw = entry.get("body") or ""
            if entry.get("body_encoded"):
                raw = base64.b64decode(raw).decode()
            headers = entry["headers"]
            service = headers.get("Authorization", "").split("/")[3] if "Authorization" in \
                headers else "?"
            target = headers.get("X-Amz-Target", "")
            operation = target.split(".")[-1] if target else entry["url"].rsplit("/", 1)[-1]
            if ("preflight" in headers.get("User-Agent", "")) != preflight:
                continue
            body = json.loads(raw) if raw.startswith("{") else {}
            if not target and "Action=" in raw:  # EC2's query protocol: form-encoded body
                body = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
                operation = body["Action"]
            found.append(Recorded(service, operation.lower(), body, headers, entry["url"]))
        return found

    def operations(self, preflight: bool = False) -> list[str]:
        """service:operation of every recorded request (or of the preflight's)."""
        return [f"{r.service}:{r.operation}" for r in self.requests(preflight)]

    def env(self, **extra: str) -> dict[str, str]:
        """What a user's shell would have: credentials, region, endpoint, outputs file."""
        return {**os.environ, "AWS_ENDPOINT_URL": self.url,
                "JOBS_OUTPUTS_FILE": str(self.outputs_file),
                "PYTHONPATH": str(REPO), **extra}

    def cli(self, *args: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`python -m jobs ARGS` with ENV (default: env()) in tmp_path, in this process."""
        return run_jobs(args, env or self.env(), self.tmp_path)

    def process(self, *args: str, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `python -m jobs ARGS` in a new process, as a user would."""
        return subprocess.run([sys.executable, "-m", "jobs", *args], cwd=self.tmp_path,
                              env=env or self.env(), capture_output=True, text=True,
                              timeout=timeout)

    # --- Seeding what moto does not model: node jobs `<id>#i` and their logs

    def backend(self) -> Any:
        """moto's Batch backend (same process as the server thread); the next test reseeds."""
        from moto.batch.models import batch_backends

        _SEED[0] = None

        return batch_backends[ACCOUNT][REGION]

    def set_status(self, job_id: str, status: str, reason: str | None = None) -> None:
        """Force a job's status (moto's non-Docker Batch finishes every job at once)."""
        job = self.backend()._jobs[job_id]
        job.status = status
        job.job_stopped = status in ("SUCCEEDED", "FAILED")
        job.job_stopped_reason = reason

    def seed_nodes(self, job_id: str, statuses: list[str],
                   exit_codes: list[int | None] | None = None) -> list[str]:
        """Create node jobs `<id>#i` with statuses, exit codes and log streams; returns streams."""
        from moto.batch.models import Job

        backend = self.backend()
        parent = backend._jobs[job_id]
        count = len(statuses)
        parent_describe = parent.describe

        def describe_parent() -> dict[str, Any]:
            result = parent_describe()
            result["nodeProperties"] = {**result["nodeProperties"], "numNodes": count}
            return result

        parent.describe = describe_parent
        streams = []
        for index, status in enumerate(statuses):
            node = Job(parent.job_name, parent.job_definition, parent.job_queue, backend,
                       log_backend=backend.logs_backend, container_overrides=None,
                       eks_properties_override=None, depends_on=None, parameters=None,
                       all_jobs=backend._jobs, timeout=None, array_properties={},
                       provided_job_id=f"{job_id}#{index}")
            parent.job_queue.jobs.remove(node)  # ListJobs shows parents only
            stream = f"mnp/default/{job_id}-{index}"
            code = (exit_codes or [None] * count)[index]
            node.status = status
            node.describe = _node_describe(node, index, stream, code)
            backend._jobs[node.job_id] = node
            streams.append(stream)
        return streams

    def put_logs(self, stream: str, lines: list[str]) -> None:
        """Write lines to a stream of the stack's log group (created if needed)."""
        try:
            self.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        except self.logs.exceptions.ResourceAlreadyExistsException:
            pass
        now = int(time.time() * 1000)
        self.logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=[
            {"timestamp": now + i, "message": line} for i, line in enumerate(lines)])


def _node_describe(node: Any, index: int, stream: str, code: int | None) -> Any:
    """DescribeJobs output of a node job, shaped like Batch's (nodeDetails, container)."""
    def describe() -> dict[str, Any]:
        container: dict[str, Any] = {"logStreamName": stream}
        if code is not None:
            container["exitCode"] = code
        return {"jobId": node.job_id, "jobName": node.job_name, "jobArn": node.arn,
                "status": node.status, "createdAt": int(time.time() * 1000),
                "jobQueue": node.job_queue.arn, "jobDefinition": node.job_definition.arn,
                "nodeDetails": {"nodeIndex": index, "isMainNode": index == 0},
                "container": container, "attempts": [{"container": dict(container)}]}
    return describe
