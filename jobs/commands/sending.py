"""Sending what submit and scale-test built: the --image-tag revision, the stage-in job, then
the jobs depending on it (cancelled together when a later SubmitJob fails)."""

from __future__ import annotations

from typing import Any

from jobs import stage
from jobs.context import Context
from jobs.errors import JobsError
from jobs.request import JobSpec, images_of, revision_request, submit_request


def register_image(ctx: Context, definition: str, tag: str) -> str:
    """Register a revision of `definition` with image tag `tag`; returns its ARN."""
    current = ctx.api.latest_definition(definition)
    request = revision_request(current, tag)
    for image in images_of(request):
        ctx.api.check_image(image)
    created = ctx.api.register(request)
    ctx.err.print(
        f"registered {request['jobDefinitionName']}:{created.get('revision')} "
        f"(copy of revision {current.get('revision')}) with image "
        f"{', '.join(sorted(set(images_of(request))))}"
    )
    return str(created["jobDefinitionArn"])


def submit_all(ctx: Context, specs: list[JobSpec], image_tag: str | None,
               staging: stage.Staging | None = None, stage_name: str = "") -> list[dict[str, Any]]:
    """Submit each spec (after the --image-tag registration and the stage-in job, which they
    depend on); returns the SubmitJob results. When a SubmitJob fails after the stage-in job
    was submitted, what this call submitted is cancelled."""
    staging = staging or stage.Staging()
    requests = [submit_request(spec) for spec in specs]
    if image_tag:
        arn = register_image(ctx, specs[0].definition, image_tag)
        for request in requests:
            request["jobDefinition"] = arn
    results: list[dict[str, Any]] = []
    stage_in: dict[str, Any] = {}
    if staging.stage_in is not None:
        first = stage.stage_in_request(staging.stage_in, stage_name or specs[0].name,
                                       specs[0].tags)
        stage_in = {**staging.as_dict()["stageIn"], "jobId": ctx.api.submit(first)["jobId"]}
        ctx.err.print(f"submitted {first['jobName']} as {stage_in['jobId']}: "
                      f"{stage_in['source']} -> {stage_in['dest']}")
        requests = [stage.depending_on(r, stage_in["jobId"]) for r in requests]
    for spec, request in zip(specs, requests, strict=True):
        try:
            result = ctx.api.submit(request)
        except JobsError:
            if stage_in:
                stage.cancel_after_failure(
                    ctx, [stage_in["jobId"], *(r["jobId"] for r in results)])
            raise
        ctx.err.print(
            f"submitted {spec.name} as {result['jobId']}: {spec.nodes} nodes x {spec.vcpus} "
            f"vCPUs, {spec.memory} MiB, queue {spec.queue}"
        )
        results.append({"jobId": result["jobId"], "jobName": result["jobName"],
                        "jobArn": result.get("jobArn"), "nodes": spec.nodes,
                        **({"stageIn": stage_in} if stage_in else {}),
                        **({"stageOut": staging.as_dict()["stageOut"]}
                           if staging.stage_out else {})})
    return results
