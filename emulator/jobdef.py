"""The multi-node job definition as synthesized, and a SubmitJob request applied to it as
Batch applies one: node count, per-range container overrides, environment by name."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# What an EFA stack's node properties hold that Terraform renders at plan (stacks/scheduling.py):
# an environment chosen by a bool variable, and the uverbs devices from a local.
_CHOICE = re.compile(r"%\{ if var\.(\w+) \}(.*?)%\{ else \}(.*?)%\{ endif \}", re.S)
_DEVICES = re.compile(r"\$\{jsonencode\(local\.\w*efa\w*\)\}")
# This machine has no EFA device to pass in: the rendered definition lists none, and the
# launcher then finds none (an Open MPI image exits 4 naming it; an MPICH one runs TCP).
NO_DEVICES = "[]"


class JobDefinitionError(ValueError):
    """The synthesized stack holds no usable multi-node job definition, or the request
    does not fit it (message names what)."""


@dataclass(frozen=True)
class LocalJob:
    """What Batch would start: one container block per node, in node order."""

    name: str
    main_node: int
    containers: tuple[dict[str, Any], ...]
    owner: tuple[int, int]  # uid, gid of the EFS access point: files on EFS belong to it
    attempt_seconds: int | None

    @property
    def num_nodes(self) -> int:
        return len(self.containers)


def multinode_definition(config: dict[str, Any]) -> dict[str, Any]:
    """The stack's multi-node job definition in Batch API shape (nodeProperties parsed)."""
    resource, props = _one_definition(
        config, lambda r: r.get("type") == "multinode", "node_properties",
        "multi-node job definitions; expected one")
    attempts = resource.get("retry_strategy", {}).get("attempts")
    return {**_api_shape(resource, "multinode"), "nodeProperties": props,
            "retryStrategy": {"attempts": int(attempts)} if attempts else {}}


def spot_definition(config: dict[str, Any]) -> dict[str, Any]:
    """The stack's single-node EC2 job definition (the Spot queue's: synthesized with a count
    that enable_spot_queue sets) in Batch API shape (containerProperties parsed)."""
    resource, props = _one_definition(
        config, lambda r: r.get("type") == "container"
        and "EC2" in r.get("platform_capabilities", []), "container_properties",
        "single-node EC2 job definitions; expected one, the Spot queue's")
    return {**_api_shape(resource, "container"), "containerProperties": props}


def _one_definition(config: dict[str, Any], kind: Callable[[dict[str, Any]], bool],
                    properties: str, expected: str) -> tuple[dict[str, Any], Any]:
    """The one aws_batch_job_definition of a kind, and its properties rendered and parsed."""
    found = [r for r in config.get("resource", {}).get("aws_batch_job_definition", {}).values()
             if kind(r)]
    if len(found) != 1:
        raise JobDefinitionError(f"the synthesized stack has {len(found)} {expected} "
                                 "(run `make synth`)")
    try:
        return found[0], json.loads(render_plan_time(found[0][properties], config))
    except ValueError:
        raise JobDefinitionError("the job definition holds a Terraform template run-local "
                                 "cannot render (run `make synth` again)") from None


def _api_shape(resource: dict[str, Any], kind: str) -> dict[str, Any]:
    """Name, type and timeout of a job definition resource as RegisterJobDefinition takes them."""
    timeout = resource.get("timeout", {}).get("attempt_duration_seconds")
    return {"jobDefinitionName": resource.get("name", ""), "type": kind,
            "timeout": {"attemptDurationSeconds": timeout} if timeout else {}}


def render_plan_time(text: str, config: dict[str, Any]) -> str:
    """An ENABLE_EFA=1 stack's node properties as plan renders them with the variables'
    defaults, except the EFA devices, which this machine does not have (NO_DEVICES)."""
    variables = config.get("variable", {})

    def choose(m: re.Match[str]) -> str:
        return m.group(2) if variables.get(m.group(1), {}).get("default") else m.group(3)

    return _DEVICES.sub(NO_DEVICES, _CHOICE.sub(choose, text))


def access_point_owner(config: dict[str, Any]) -> tuple[int, int]:
    """uid/gid the stack's EFS access point gives every file (1000/1000 when there is none)."""
    for ap in config.get("resource", {}).get("aws_efs_access_point", {}).values():
        user = ap.get("posix_user", {})
        return int(user.get("uid", 1000)), int(user.get("gid", 1000))
    return 1000, 1000


def _targets(spec: str, num_nodes: int) -> range:
    """Node indices of a `targetNodes` range: "2", "0:", ":3", "1:4" (ends inclusive)."""
    lo, sep, hi = spec.partition(":")
    first = int(lo) if lo else 0
    last = (int(hi) if hi else num_nodes - 1) if sep else first
    return range(first, min(last, num_nodes - 1) + 1)


def _override(container: dict[str, Any], over: dict[str, Any]) -> None:
    """Apply one containerOverrides block in place (Batch's rules for each field)."""
    if "command" in over:
        container["command"] = list(over["command"])
    if "environment" in over:
        merged = {e["name"]: e["value"] for e in container.get("environment", [])}
        merged.update({e["name"]: e["value"] for e in over["environment"]})
        container["environment"] = [{"name": k, "value": v} for k, v in merged.items()]
    if "resourceRequirements" in over:
        by_type = {r["type"]: r for r in container.get("resourceRequirements", [])}
        by_type.update({r["type"]: r for r in over["resourceRequirements"]})
        container["resourceRequirements"] = list(by_type.values())


def apply_request(definition: dict[str, Any], request: dict[str, Any],
                  owner: tuple[int, int] = (1000, 1000)) -> LocalJob:
    """The containers Batch would start for SubmitJob `request` on `definition`."""
    if "containerOverrides" in request:
        raise JobDefinitionError("a single-node (Spot) request: run-local runs the multi-node "
                                 "job definition")
    props = definition["nodeProperties"]
    over = request.get("nodeOverrides", {})
    num_nodes = int(over.get("numNodes", props["numNodes"]))
    per_node: list[dict[str, Any] | None] = [None] * num_nodes
    for node_range in props["nodeRangeProperties"]:
        for i in _targets(node_range["targetNodes"], num_nodes):
            per_node[i] = copy.deepcopy(node_range["container"])
    missing = [i for i, c in enumerate(per_node) if c is None]
    if missing:
        raise JobDefinitionError(f"no node range of {definition['jobDefinitionName']} covers "
                                 f"node(s) {missing} of {num_nodes}")
    for node_override in over.get("nodePropertyOverrides", []):
        for i in _targets(node_override["targetNodes"], num_nodes):
            _override(per_node[i], node_override.get("containerOverrides", {}))  # type: ignore[arg-type]
    timeout = request.get("timeout", definition.get("timeout", {})).get("attemptDurationSeconds")
    return LocalJob(request.get("jobName", definition["jobDefinitionName"]),
                    int(props.get("mainNode", 0)), tuple(per_node), owner,  # type: ignore[arg-type]
                    timeout)


def apply_array_request(definition: dict[str, Any], request: dict[str, Any],
                        owner: tuple[int, int] = (1000, 1000)) -> LocalJob:
    """The array children Batch would start for SubmitJob `request` (with arrayProperties) on
    a single-node `definition`: one container each, all alike; index 0 is a gang's main node
    (launcher/gang.py)."""
    if "nodeOverrides" in request:
        raise JobDefinitionError("a multi-node request: arrays run a single-node definition")
    size = request.get("arrayProperties", {}).get("size")
    # SubmitJob arrayProperties.size: between 2 and 10,000 (Batch API reference).
    if not isinstance(size, int) or not 2 <= size <= 10_000:
        raise JobDefinitionError(f"arrayProperties.size {size!r} is not an array size: "
                                 "2..10000")
    container = copy.deepcopy(definition["containerProperties"])
    _override(container, request.get("containerOverrides", {}))
    timeout = request.get("timeout", definition.get("timeout", {})).get("attemptDurationSeconds")
    return LocalJob(request.get("jobName", definition["jobDefinitionName"]), 0,
                    tuple(copy.deepcopy(container) for _ in range(size)), owner, timeout)


def resource(container: dict[str, Any], kind: str) -> int | None:
    """The container's VCPU or MEMORY requirement as an integer."""
    for r in container.get("resourceRequirements", []):
        if r["type"] == kind:
            return int(float(r["value"]))
    return None
