"""Stage-out without the user's machine: an EventBridge rule submits the staging job when a
multi-node job that asked for it (the `stageOut` parameter) ends, however it ended."""

from __future__ import annotations

import json

from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import (
    CloudwatchEventTarget,
    CloudwatchEventTargetBatchTarget,
    CloudwatchEventTargetInputTransformer,
)
from constructs import Construct

from launcher.contract import (
    JOB_ID_PARAMETER,
    OUTPUT_DIR_PARAMETER,
    STAGE_OUT_PARAMETER,
    STATUS_PARAMETER,
)
from stacks.config import name, tags
from stacks.fallback import queue_arn_filter
from stacks.policy import Statement, service_role
from stacks.staging import StagingJobs

# Terminal states: a job Batch stopped (cancel, terminate, timeout) ends FAILED too
# (docs.aws.amazon.com/batch/latest/userguide/job_states.html).
TERMINAL_STATES = ("SUCCEEDED", "FAILED")
# The staging job's parameters, each from the event's `detail`, which "resembles the JobDetail
# object" of DescribeJobs (docs.aws.amazon.com/batch/latest/userguide/batch_cwe_events.html).
EVENT_PATHS = {JOB_ID_PARAMETER: "$.detail.jobId", STATUS_PARAMETER: "$.detail.status",
               STAGE_OUT_PARAMETER: f"$.detail.parameters.{STAGE_OUT_PARAMETER}",
               OUTPUT_DIR_PARAMETER: f"$.detail.parameters.{OUTPUT_DIR_PARAMETER}"}


def event_pattern(queue_arn: str) -> dict:
    """Terminal state changes, carrying a stage-out location, of the queue's and its
    fallbacks' jobs."""
    return {"source": ["aws.batch"], "detail-type": ["Batch Job State Change"],
            "detail": {
                "jobQueue": queue_arn_filter(queue_arn), "status": list(TERMINAL_STATES),
                # The nodes of a multi-node job ('<id>#<n>') change state too; their parent's
                # event is the one that stages (EventBridge: "Anything-but using a wildcard",
                # eventbridge/latest/userguide/eb-create-pattern-operators.html).
                "jobId": [{"anything-but": {"wildcard": "*#*"}}],
                "parameters": {STAGE_OUT_PARAMETER: [{"exists": True}]}}}


def input_template() -> str:
    """The Batch target's input: a `Parameters` object, which Batch substitutes for the job
    definition's Ref:: placeholders (docs.aws.amazon.com/batch/latest/userguide/
    batch-cwe-target.html, the input transformer step)."""
    values = ", ".join(f'"{key}": <{key}>' for key in EVENT_PATHS)
    return f'{{"Parameters": {{{values}}}}}'


class StageOutRule(Construct):
    """The rule on the multi-node queue, its Batch target and the role EventBridge submits as."""

    def __init__(self, scope: Construct, id_: str, *, cluster: str, queue_arn: str,
                 staging: StagingJobs) -> None:
        super().__init__(scope, id_)
        queue, definition = staging.job_queue, staging.job_definition
        # EventBridge needs a role for a Batch target (batch userguide, CWE_IAM_role.html);
        # this one may submit the staging definition to the staging queue and nothing else.
        role = service_role(
            self, "role", role_name=name(cluster, "stage-out-events"),
            service="events.amazonaws.com", tags=tags(cluster),
            statements=[Statement(actions=["batch:SubmitJob"],
                                  resources=[queue.arn, definition.arn])])
        self.rule = CloudwatchEventRule(
            self, "rule", name=name(cluster, "stage-out"),
            description="Submit the stage-out job when a job with a stageOut parameter ends",
            event_pattern=json.dumps(event_pattern(queue_arn)), tags=tags(cluster))
        self.target = CloudwatchEventTarget(
            self, "target", rule=self.rule.name, arn=queue.arn, role_arn=role.arn,
            batch_target=CloudwatchEventTargetBatchTarget(
                job_definition=definition.arn, job_name=name(cluster, "stage-out")),
            input_transformer=CloudwatchEventTargetInputTransformer(
                input_paths=EVENT_PATHS, input_template=input_template()))
