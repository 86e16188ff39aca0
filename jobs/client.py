"""One thin wrapper around the AWS clients the CLI uses; all AWS calls go here."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from jobs.errors import AwsError, NotFound, translate

# Standard mode retries throttling and transient errors with backoff; AWS_MAX_ATTEMPTS still
# applies because max_attempts is not pinned here.
BOTO_CONFIG = Config(retries={"mode": "standard"}, user_agent_extra="mnp-batch-jobs")
# Preflight's reads say so in their user agent (CloudTrail's userAgent, moto's recorder).
PREFLIGHT_CONFIG = BOTO_CONFIG.merge(Config(user_agent_extra="mnp-batch-jobs preflight"))
# The Price List API answers in us-east-1 (also eu-central-1, ap-south-1) for every region.
PRICING_REGION = "us-east-1"
_SERVICES = ("batch", "logs", "ecr", "ec2", "ecs", "service-quotas", "pricing", "s3", "fsx")
DESCRIBE_CHUNK = 100  # DescribeJobs takes at most 100 ids
_ECR_IMAGE_RE = re.compile(r"^(\d{12})\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/([^:@]+)")


def ecr_parts(image: str) -> tuple[str, str, dict[str, str]] | None:
    """(registry id, repository, imageId) of an ECR image reference, None for other registries."""
    match = _ECR_IMAGE_RE.match(image)
    if not match:
        return None
    rest = image[match.end():]
    if rest.startswith("@"):
        return match.group(1), match.group(3), {"imageDigest": rest[1:]}
    # No tag means Docker's default tag.
    return match.group(1), match.group(3), {"imageTag": rest[1:] if rest else "latest"}


class BatchJobs:
    """The AWS calls the CLI needs (Batch, Logs, ECR; EC2, Service Quotas and Price List reads
    for preflight), with errors translated in one place."""

    def __init__(
        self,
        batch: Any = None,
        logs: Any = None,
        ecr: Any = None,
        session: boto3.session.Session | None = None,
        *,
        clients: dict[str, Any] | None = None,
        config: Config = BOTO_CONFIG,
    ) -> None:
        self._given: dict[str, Any] = dict.fromkeys(_SERVICES)
        self._given.update({"batch": batch, "logs": logs, "ecr": ecr, **(clients or {})})
        self._injected = {k for k, v in self._given.items() if v is not None}
        self._session = session
        self._config = config

    def _client(self, service: str) -> Any:
        if self._given[service] is None:
            try:
                session = self._session or boto3.session.Session()
                region = PRICING_REGION if service == "pricing" else None
                self._given[service] = session.client(service, region_name=region,
                                                      config=self._config)
            except BotoCoreError as exc:
                raise translate(exc) from exc
        return self._given[service]

    def preflight_view(self) -> BatchJobs:
        """The same session and injected clients, with preflight's user agent on new clients."""
        given = {k: v for k, v in self._given.items() if k in self._injected}
        return BatchJobs(session=self._session, clients=given, config=PREFLIGHT_CONFIG)

    def read(self, service: str, method: str, **kwargs: Any) -> dict[str, Any]:
        """One call of any client method, errors translated."""
        return self._call(getattr(self._client(service), method), **kwargs)

    def read_pages(self, service: str, method: str, key: str, **kwargs: Any) -> list[Any]:
        """Every item under `key` of every page of a paginated call."""
        paginator = self._client(service).get_paginator(method)
        pages = self._call(lambda: list(paginator.paginate(**kwargs)))
        return [item for page in pages for item in page.get(key, [])]

    def region(self) -> str:
        """The region the Batch client talks to."""
        return str(self._client("batch").meta.region_name)

    def api_name(self, service: str, method: str) -> str:
        """The IAM action of a client method, e.g. ec2:DescribeInstanceTypes."""
        prefix = {"service-quotas": "servicequotas"}.get(service, service)
        operation = self._client(service).meta.method_to_api_mapping.get(method, method)
        return f"{prefix}:{operation}"

    @cached_property
    def batch(self) -> Any:
        """The Batch client."""
        return self._client("batch")

    @cached_property
    def logs(self) -> Any:
        """The CloudWatch Logs client."""
        return self._client("logs")

    @cached_property
    def ecr(self) -> Any:
        """The ECR client."""
        return self._client("ecr")

    @cached_property
    def s3(self) -> Any:
        """The S3 client (staged data: manifests, fetch's transfer manager)."""
        return self._client("s3")

    @staticmethod
    def _call(fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        """SubmitJob; returns jobId, jobName, jobArn."""
        return self._call(self.batch.submit_job, **request)

    def tag(self, arn: str, tags: dict[str, str]) -> None:
        """TagResource on a job (its ARN)."""
        self._call(self.batch.tag_resource, resourceArn=arn, tags=tags)

    def describe(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        """DescribeJobs for any number of ids, keyed by job id (missing ids are absent)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(job_ids), DESCRIBE_CHUNK):
            chunk = job_ids[start : start + DESCRIBE_CHUNK]
            for job in self._call(self.batch.describe_jobs, jobs=chunk).get("jobs", []):
                found[job["jobId"]] = job
        return found

    def job(self, job_id: str) -> dict[str, Any]:
        """One job, or NotFound."""
        job = self.describe([job_id]).get(job_id)
        if job is None:
            region = self.batch.meta.region_name
            raise NotFound(
                f"no job {job_id} in {region}",
                hint="check the id and AWS_REGION (Batch forgets jobs about 7 days after they end)",
            )
        return job

    def nodes(self, job: dict[str, Any]) -> list[dict[str, Any] | None]:
        """The node jobs `<id>#i` of a multi-node job (None where Batch has none yet)."""
        count = int(job.get("nodeProperties", {}).get("numNodes") or 0)
        if count == 0 or "#" in job["jobId"]:
            return []
        ids = [f"{job['jobId']}#{i}" for i in range(count)]
        found = self.describe(ids)
        return [found.get(i) for i in ids]

    def terminate(self, job_id: str, reason: str) -> None:
        """TerminateJob: cancels a queued job and stops a running one."""
        self._call(self.batch.terminate_job, jobId=job_id, reason=reason)

    def list_jobs(self, queue: str, statuses: list[str]) -> list[dict[str, Any]]:
        """Job summaries in one queue for the given statuses, all pages."""
        paginator = self.batch.get_paginator("list_jobs")
        summaries: list[dict[str, Any]] = []
        for status in statuses:
            pages = paginator.paginate(jobQueue=queue, jobStatus=status)
            for page in self._call(lambda p=pages: list(p)):
                summaries.extend(page.get("jobSummaryList", []))
        return summaries

    def latest_definition(self, name: str) -> dict[str, Any]:
        """The newest ACTIVE revision of a job definition (name, name:rev or ARN)."""
        if ":" in name:
            kwargs: dict[str, Any] = {"jobDefinitions": [name]}
        else:
            kwargs = {"jobDefinitionName": name, "status": "ACTIVE"}
        paginator = self.batch.get_paginator("describe_job_definitions")
        pages = self._call(lambda: list(paginator.paginate(**kwargs)))
        found = [d for page in pages for d in page.get("jobDefinitions", [])]
        found = [d for d in found if d.get("status", "ACTIVE") == "ACTIVE"]
        if not found:
            raise NotFound(
                f"no active job definition {name}",
                hint="check --job-definition / JOB_DEFINITION_NAME and AWS_REGION",
            )
        return max(found, key=lambda d: d.get("revision", 0))

    def register(self, request: dict[str, Any]) -> dict[str, Any]:
        """RegisterJobDefinition; returns jobDefinitionArn and revision."""
        return self._call(self.batch.register_job_definition, **request)

    def check_image(self, image: str) -> None:
        """For an ECR image, make sure the tag was pushed (else nodes fail to pull it)."""
        match = _ECR_IMAGE_RE.match(image)
        if not match or ":" not in image.rsplit("/", 1)[-1]:
            return
        tag = image.rsplit(":", 1)[1]
        try:
            self.ecr.describe_images(
                registryId=match.group(1),
                repositoryName=match.group(3),
                imageIds=[{"imageTag": tag}],
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("ImageNotFoundException",
                                                 "RepositoryNotFoundException"):
                raise NotFound(
                    f"image {image} is not in ECR",
                    hint="build and push that tag first; ECR tags are immutable",
                    code=exc.response["Error"]["Code"],
                ) from exc
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc

    def object_bytes(self, bucket: str, key: str, limit: int) -> bytes | None:
        """An S3 object's bytes (at most ``limit``), None when there is no such key."""
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
            data = body.read(limit + 1)
        except ClientError as exc:
            # S3 answers NoSuchKey only to a caller with s3:ListBucket; else AccessDenied,
            # which stays an error (GetObject in the S3 API reference, "Permissions").
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        if len(data) > limit:
            raise AwsError(f"s3://{bucket}/{key} is larger than {limit} bytes: not ours")
        return bytes(data)

    def last_lines(self, group: str, stream: str, limit: int = 50) -> list[str]:
        """The newest `limit` messages of a log stream, oldest first."""
        page = self._call(self.logs.get_log_events, logGroupName=group, logStreamName=stream,
                          startFromHead=False, limit=limit)
        return [e["message"].rstrip("\n") for e in page.get("events", [])]

    def log_events(
        self, group: str, stream: str, token: str | None = None
    ) -> Iterator[tuple[list[dict[str, Any]], str]]:
        """Pages of a log stream from the start (or token) until no new events arrive."""
        while True:
            kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream}
            if token:
                kwargs["nextToken"] = token
            else:
                kwargs["startFromHead"] = True
            page = self._call(self.logs.get_log_events, **kwargs)
            new_token = page["nextForwardToken"]
            yield page.get("events", []), new_token
            # GetLogEvents returns the same token once the end of the stream is reached.
            if new_token == token or not page.get("events"):
                return
            token = new_token
