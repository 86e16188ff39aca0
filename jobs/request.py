"""Pure builders for the Batch requests the CLI sends (so --dry-run prints exactly them)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from launcher.contract import (
    EVALUATE_ON_EXIT,
    INPUT_PATH_ENV,
    OUTPUT_PATH_ENV,
    RANKS_PER_NODE_ENV,
)

CLI_TAGS = {"submitted-by": "mnp-batch-jobs-cli"}
# Fields of a DescribeJobDefinitions entry that RegisterJobDefinition accepts back.
_REGISTER_FIELDS = (
    "type", "parameters", "schedulingPriority", "containerProperties", "nodeProperties",
    "retryStrategy", "propagateTags", "timeout", "tags", "platformCapabilities",
    "eksProperties", "ecsProperties", "consumableResourceProperties",
)


@dataclass(frozen=True)
class JobSpec:
    """What the user asked to run; already validated."""

    name: str
    queue: str
    definition: str
    nodes: int
    vcpus: int
    memory: int
    input_path: str | None = None
    output_path: str | None = None
    command: tuple[str, ...] = ()
    attempts: int | None = None
    timeout: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # --env, checked; MNP_RANKS_PER_NODE wins
    single_node: bool = False  # a container job (the Spot queue), not a multi-node one
    parameters: dict[str, str] = field(default_factory=dict)  # e.g. the stage-out location


def submit_request(spec: JobSpec) -> dict[str, Any]:
    """One SubmitJob request; overrides go to every node (range "0:") of a multi-node job."""
    variables = {RANKS_PER_NODE_ENV: str(spec.vcpus), **spec.env}
    if spec.input_path:
        variables[INPUT_PATH_ENV] = spec.input_path
    if spec.output_path:
        variables[OUTPUT_PATH_ENV] = spec.output_path
    container: dict[str, Any] = {
        # resourceRequirements, not the legacy vcpus/memory fields, which Batch ignores when
        # the job definition uses resourceRequirements.
        "resourceRequirements": [
            {"type": "VCPU", "value": str(spec.vcpus)},
            {"type": "MEMORY", "value": str(spec.memory)},
        ],
        "environment": [{"name": k, "value": v} for k, v in sorted(variables.items())],
    }
    if spec.command:
        container["command"] = list(spec.command)
    request: dict[str, Any] = {
        "jobName": spec.name,
        "jobQueue": spec.queue,
        "jobDefinition": spec.definition,
        "propagateTags": True,
        "tags": {**CLI_TAGS, **spec.tags},
    }
    if spec.single_node:
        request["containerOverrides"] = container
    else:
        request["nodeOverrides"] = {
            "numNodes": spec.nodes,
            "nodePropertyOverrides": [{"targetNodes": "0:", "containerOverrides": container}],
        }
    if spec.parameters:
        request["parameters"] = dict(spec.parameters)
    if spec.attempts is not None:
        request["retryStrategy"] = {
            "attempts": spec.attempts,
            # Replaces the job definition's whole strategy, so it carries the same rules.
            "evaluateOnExit": copy.deepcopy(list(EVALUATE_ON_EXIT)),
        }
    if spec.timeout is not None:
        request["timeout"] = {"attemptDurationSeconds": spec.timeout}
    return request


def with_tag(image: str, tag: str) -> str:
    """The same repository with another tag (a digest or old tag is dropped)."""
    name = image.partition("@")[0]
    if name.rfind(":") > name.rfind("/"):  # a ':' after the last '/' is a tag, not a port
        name = name[: name.rfind(":")]
    return f"{name}:{tag}"


def images_of(definition: dict[str, Any]) -> list[str]:
    """Every container image a job definition names."""
    found = []
    if "containerProperties" in definition:
        found.append(definition["containerProperties"].get("image", ""))
    for node_range in definition.get("nodeProperties", {}).get("nodeRangeProperties", []):
        found.append(node_range.get("container", {}).get("image", ""))
    return [i for i in found if i]


def revision_request(definition: dict[str, Any], tag: str) -> dict[str, Any]:
    """RegisterJobDefinition for a copy of `definition` whose images carry `tag`."""
    request = {k: copy.deepcopy(definition[k]) for k in _REGISTER_FIELDS if k in definition}
    request["jobDefinitionName"] = definition["jobDefinitionName"]
    if "containerProperties" in request:
        props = request["containerProperties"]
        props["image"] = with_tag(props["image"], tag)
    for node_range in request.get("nodeProperties", {}).get("nodeRangeProperties", []):
        container = node_range.get("container", {})
        if "image" in container:
            container["image"] = with_tag(container["image"], tag)
    if not request.get("tags"):
        request.pop("tags", None)
    return request
