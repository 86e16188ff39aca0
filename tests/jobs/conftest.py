"""A moto server on loopback for the whole session, and per-test Batch/Logs/ECR resources."""

from __future__ import annotations

import io
import json
import logging
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import missing_apis, moto_fixes
from tests.jobs import moto_env
from tests.jobs.moto_env import REGION, Aws

OWN_ENV = ("JOB_QUEUE_NAME", "JOB_DEFINITION_NAME", "MAX_VCPUS", "LOG_GROUP_NAME",
           "JOBS_OUTPUTS_FILE", "JOBS_STACK", "SPOT_JOB_QUEUE_NAME", "SPOT_JOB_DEFINITION_NAME")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real AWS profile, credentials or endpoint can leak into a test."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "BOTO_")) or key in OWN_ENV:
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps help at the terminal width


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """moto in server mode on a free loopback port, recording requests to a temp file."""
    recording = tmp_path_factory.mktemp("moto") / "recording.jsonl"
    patch = pytest.MonkeyPatch()
    patch.setenv("MOTO_ENABLE_RECORDING", "True")
    patch.setenv("MOTO_RECORDER_FILEPATH", str(recording))
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    # The recorder reads its path at import; another test may have imported moto first.
    patch.setattr(recorder, "_location", str(recording))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # --image-tag copies nodeProperties, which moto 5.2.5 leaves out of DescribeJobDefinitions.
    moto_fixes.job_definition_node_properties(patch.setattr)
    _seed_what_moto_does_not_model(patch)
    # Every reset builds a new EC2 backend, which parses moto's catalogue of public AMIs: a
    # quarter of these tests' time. No test here resolves an AMI (moto validates none by
    # default), so this server starts without them (moto's MOTO_EC2_LOAD_DEFAULT_AMIS=false,
    # set in this process only: the Terraform round trip's emulator keeps its AMIs).
    from moto import settings

    patch.setattr(settings, "ec2_load_default_amis", lambda: False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    patch.undo()


def _seed_what_moto_does_not_model(patch: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 knows only VPC quotas and has no Price List API: answer from the seeds."""
    from moto.core.request import Request
    from moto.moto_api import recorder
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.servicequotas.models import ServiceQuotasBackend

    quota = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        if service_code == "ec2" and quota_code in moto_env.SEEDED_QUOTAS:
            return {"ServiceCode": "ec2", "QuotaCode": quota_code, "Unit": "None",
                    "Value": moto_env.SEEDED_QUOTAS[quota_code]}
        return quota(self, service_code, quota_code)

    patch.setattr(ServiceQuotasBackend, "get_service_quota", get_service_quota)
    dispatch = DomainDispatcherApplication.__call__

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if not _reads_only(environ):
            moto_env.SERVED[0] += 1  # a request that may change state: the next test reseeds
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("AWSPriceListService."):
            return dispatch(self, environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        recorder._record_request(Request(environ), body=body)
        asked = json.loads(body)
        terms = {f["Field"]: f["Value"] for f in asked.get("Filters", [])}
        if asked.get("ServiceCode") != "AmazonEC2":
            products = [missing_apis.price_list_entry(attributes, unit, usd)
                        for service, attributes, unit, usd in moto_env.SEEDED_PRODUCTS
                        if service == asked.get("ServiceCode")
                        and all(attributes.get(k) == v for k, v in terms.items())]
        else:
            price = moto_env.SEEDED_PRICES.get((terms.get("instanceType"),
                                                terms.get("regionCode")))
            products = [] if price is None else [
                missing_apis.price_list_entry({"instanceType": terms["instanceType"]}, "Hrs",
                                            price)]
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1")])
        return [json.dumps({"FormatVersion": "aws_v1", "PriceList": products}).encode()]

    patch.setattr(DomainDispatcherApplication, "__call__", call)


# Operations that change nothing, by the prefixes AWS names its read-only APIs with.
READ_ONLY = ("describe", "list", "get")


def _reads_only(environ: dict[str, Any]) -> bool:
    """Whether a request cannot change moto's state, from its operation name as each protocol
    carries it (botocore's service models): JSON's X-Amz-Target, query's Action, Batch's
    REST path (`/v1/describejobs`), S3's method. Anything else counts as a change."""
    path = environ.get("PATH_INFO", "")
    if path.startswith("/moto-api/"):
        return True
    operation = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
    if not operation and environ.get("CONTENT_TYPE", "").startswith(
            "application/x-www-form-urlencoded"):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        operation = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action", [""])[0]
    if not operation and path.startswith("/v1/"):
        operation = path[len("/v1/"):]
    if not operation:
        return environ.get("REQUEST_METHOD") in ("GET", "HEAD")
    return operation.lower().startswith(READ_ONLY)


@pytest.fixture
def aws(moto_url: str, tmp_path: Path) -> Aws:
    """Fresh resources on the session's moto server; recording starts after seeding."""
    env = Aws(moto_url, tmp_path)
    env.setup()
    return env


@pytest.fixture
def deny(aws: Aws, monkeypatch: pytest.MonkeyPatch):
    """Switch on moto's IAM enforcement for a user allowed everything but the given actions."""
    enforced = []

    def apply(*actions: str) -> None:
        aws.iam.create_user(UserName="researcher")
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": list(actions), "Resource": "*"}]}
        aws.iam.put_user_policy(UserName="researcher", PolicyName="most",
                                PolicyDocument=json.dumps(policy))
        key = aws.iam.create_access_key(UserName="researcher")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        aws.start_recording()
        _enforce_iam(aws.url, "0")  # from the next request on
        enforced.append(True)

    yield apply
    if enforced:
        _enforce_iam(aws.url, "inf")


def _enforce_iam(url: str, after: str) -> None:
    """moto's /moto-api/reset-auth: check IAM policies after this many requests ("inf": never)."""
    request = urllib.request.Request(f"{url}/moto-api/reset-auth", data=after.encode(),
                                     method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=30):
        pass


@dataclass
class Result:
    """Exit code and output of an in-process CLI run."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_main(aws: Aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Call jobs.cli.main in this process against moto (fast; for the many bad-input cases)."""
    from jobs.cli import main

    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    monkeypatch.setenv("JOBS_OUTPUTS_FILE", str(aws.outputs_file))
    monkeypatch.chdir(aws.tmp_path)

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
