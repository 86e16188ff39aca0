"""The job definition and queue as Batch's own API model (botocore) would receive them."""

from __future__ import annotations

import json
import re

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import ParamValidator

from tests.stacks.conftest import only

# Terraform interpolations become plausible literal values before validation.
PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def _to_api(value: object) -> object:
    """Terraform's snake_case blocks to the API's camelCase members."""
    if isinstance(value, dict):
        return {_camel(k): _to_api(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_api(v) for v in value]
    return value


def _validate(operation: str, params: dict) -> None:
    model = botocore.session.get_session().get_service_model("batch")
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise ParamValidationError(report=report.generate_report())


def _register_params(definition: dict) -> dict:
    node_properties = json.loads(PLACEHOLDER.sub("x", definition["node_properties"]))
    return {"jobDefinitionName": "mnp-hpc-mpi", "type": definition["type"],
            "nodeProperties": node_properties,
            "retryStrategy": _to_api(definition["retry_strategy"]),
            "timeout": _to_api(definition["timeout"]),
            "platformCapabilities": definition["platform_capabilities"],
            "propagateTags": definition["propagate_tags"]}


def test_multinode_job_definition_matches_register_job_definition(synthesized: dict) -> None:
    _validate("RegisterJobDefinition",
              _register_params(_mnp_definition(synthesized)))


def test_model_check_catches_a_wrong_shape(synthesized: dict) -> None:
    params = _register_params(_mnp_definition(synthesized))
    params["nodeProperties"]["nodeRangeProperties"][0]["container"]["vcpus"] = "eight"
    with pytest.raises(ParamValidationError, match="vcpus"):
        _validate("RegisterJobDefinition", params)


def test_job_queue_time_limits_match_create_job_queue(synthesized: dict) -> None:
    queue = only(synthesized, "aws_batch_job_queue", "scheduling_job_queue")
    _validate("CreateJobQueue", {
        "jobQueueName": "mnp-hpc-mpi", "state": queue["state"], "priority": queue["priority"],
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "arn"}],
        "jobStateTimeLimitActions": _to_api(queue["job_state_time_limit_action"])})


def _mnp_definition(stack: dict) -> dict:
    return only(stack, "aws_batch_job_definition", "scheduling_job_definition")
