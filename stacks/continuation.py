"""The continuation controller: one Lambda function run by Batch job-state events and a
5-minute sweep, with its role, log group, dead-letter queue and alarms.

Its decisions live in `continuation/` (README there: why an EventBridge rule and a function,
what it costs, what happens when it fails). Everything here is counted by
`enable_continuation`; the deployment package is zipped from the checkout at synth time.
"""

from __future__ import annotations

import json
from pathlib import Path

from cdktf import App, AssetType, TerraformAsset, Token
from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import (
    CloudwatchEventTarget,
    CloudwatchEventTargetDeadLetterConfig,
)
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.lambda_function import (
    LambdaFunction,
    LambdaFunctionDeadLetterConfig,
    LambdaFunctionEnvironment,
    LambdaFunctionTracingConfig,
)
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from cdktf_cdktf_provider_aws.sqs_queue_policy import SqsQueuePolicy
from constructs import Construct

from continuation.family import TAG_GANG, TAG_MIN_NODES
from continuation.handler import QUEUES_ENV, SPOT_QUEUE_ENV
from stacks.bundle import build_zip, closure
from stacks.config import PlatformConfig, name, tags
from stacks.encryption import Encryption
from stacks.fallback import queue_arn_filter, queue_arn_resources, queue_specs_json
from stacks.policy import trust_policy
from stacks.variables import CONTINUATION_ENABLED, counted_ref

PACKAGE_FILE = "continuation.zip"
# The events the handler decides on (continuation/README.md, "Decisions"): a job waiting
# RUNNABLE (perhaps for capacity) and a job that FAILED. Batch sends "Batch Job State Change"
# for every transition (Batch user guide, batch_cwe_events.html); the others need no decision.
DECIDED_STATUSES = ("FAILED", "RUNNABLE")
PERIOD_S = 300
# Batch actions with no resource-level permissions take "*"; SubmitJob is scoped by job queue
# and job definition, CancelJob and TagResource by job (Batch user guide,
# batch-supported-iam-actions-resources.html; Service Authorization Reference, list_awsbatch).
READ_ACTIONS = ["batch:DescribeJobs", "batch:ListJobs"]


def continuation_count() -> float:
    """`count` of every controller resource: 1 when enable_continuation, else 0."""
    return Token.as_number(f"${{{CONTINUATION_ENABLED} ? 1 : 0}}")


def _ref(resource: Construct, attribute: str) -> str:
    return f"${{{counted_ref(resource, attribute)}}}"


def _when_on(resource: Construct, attribute: str) -> str:
    """An output value: the controller's attribute, or '' when it is off."""
    return f'${{{CONTINUATION_ENABLED} ? {counted_ref(resource, attribute)} : ""}}'


class Continuation(Construct):
    """Function, role, logs, DLQ, the two rules and the alarms; all absent when switched off."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 encryption: Encryption, queue_name: str, queue_arn: str,
                 job_definition_name: str, alarm_topic_arn: str,
                 spot_queue_arn: str | None = None,
                 spot_job_definition_name: str | None = None,
                 spot_queue_name: str | None = None) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self._config = config
        self._encryption = encryption
        self._function_name = name(cluster, "continuation")
        # --- The package and where the function writes
        self.package = self._add_package()
        self.dead_letter_queue = self._add_dead_letter_queue()
        self.log_group = self._add_log_group()
        # --- The function
        # A run of Spot gangs is continued on the Spot queue and its job definition.
        self.role = self._add_role(queue_arn, job_definition_name, spot_queue_arn,
                                   spot_job_definition_name)
        self.function = self._add_function(queue_name, spot_queue_name)
        # --- What runs it
        self.state_rule = self._add_rule(
            "state_rule", "state", "Batch job state changes the continuation controller decides on",
            event_pattern=json.dumps({
                "source": ["aws.batch"], "detail-type": ["Batch Job State Change"],
                # The Spot queue too: a gang member's exit 3 cancels its array
                # (continuation/README.md, "Spot gangs"); and the fallback queues.
                "detail": {"status": list(DECIDED_STATUSES),
                           "jobQueue": [*queue_arn_filter(queue_arn),
                                        *([spot_queue_arn] if spot_queue_arn else [])]}}))
        self.sweep_rule = self._add_rule(
            "sweep_rule", "sweep", "The continuation controller's sweep: RUNNABLE deadlines and "
            "events that never arrived", schedule_expression=config.controller.sweep_schedule)
        self._add_queue_policy([self.state_rule, self.sweep_rule])
        # --- Alarms
        self._add_alarm("dead_letters_alarm", "AWS/SQS", "ApproximateNumberOfMessagesVisible",
                        {"QueueName": _ref(self.dead_letter_queue, "name")}, "Maximum",
                        "An event or invocation of the continuation controller failed for good "
                        "(it is in the dead-letter queue): a run may not have been continued.",
                        alarm_topic_arn)
        self._add_alarm("errors_alarm", "AWS/Lambda", "Errors",
                        {"FunctionName": _ref(self.function, "function_name")}, "Sum",
                        "The continuation controller failed a decision (Lambda retries it "
                        "twice; see its log group).", alarm_topic_arn)
        self.function_name = _when_on(self.function, "function_name")
        self.log_group_name = _when_on(self.log_group, "name")

    def _add_package(self) -> TerraformAsset:
        """The handler's package and the project modules it imports, zipped reproducibly."""
        controller = self._config.controller
        staged = Path(App.of(self).outdir).resolve() / "build" / PACKAGE_FILE
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.write_bytes(build_zip(closure(controller.package)))
        # A fixed asset folder: the stack's JSON stays the same when only the code changes;
        # filebase64sha256 tells Terraform, at plan, that the package did.
        return TerraformAsset(self, "package", path=str(staged), type=AssetType.FILE,
                              asset_hash="package")

    def _add_dead_letter_queue(self) -> SqsQueue:
        """Events EventBridge could not deliver and invocations Lambda gave up on."""
        return SqsQueue(self, "dead_letter_queue", count=continuation_count(),
                        name=name(self._cluster, "continuation-dlq"),
                        kms_master_key_id=self._encryption.key.arn,
                        message_retention_seconds=self._config.controller.dead_letter_retention_s,
                        tags=tags(self._cluster))

    def _add_log_group(self) -> CloudwatchLogGroup:
        # Lambda's own name for it (/aws/lambda/<function>), made here with the stack's
        # retention and key; the role may not create it.
        return CloudwatchLogGroup(
            self, "log_group", count=continuation_count(),
            name=f"/aws/lambda/{self._function_name}",
            retention_in_days=self._config.limits.log_retention_days,
            kms_key_id=self._encryption.key.arn, tags=tags(self._cluster))

    def _add_role(self, queue_arn: str, job_definition_name: str,
                  spot_queue_arn: str | None = None,
                  spot_job_definition_name: str | None = None) -> IamRole:
        count = continuation_count()
        role = IamRole(self, "role", count=count, name=name(self._cluster, "continuation"),
                       assume_role_policy=trust_policy("lambda.amazonaws.com"),
                       tags=tags(self._cluster))
        IamRolePolicy(self, "role_policy", count=count, role=_ref(role, "id"),
                      name=name(self._cluster, "continuation"),
                      policy=json.dumps(self.policy(queue_arn, job_definition_name,
                                                    spot_queue_arn, spot_job_definition_name)))
        return role

    def policy(self, queue_arn: str, job_definition_name: str,
               spot_queue_arn: str | None = None,
               spot_job_definition_name: str | None = None) -> dict:
        """The function's permissions: the Batch calls of continuation/, its logs, its DLQ;
        with the Spot pair, SubmitJob of a run's next Spot gang there too."""
        enc = self._encryption
        batch = f"arn:{enc.partition}:batch:{enc.region}:{enc.account_id}"
        spot = [spot_queue_arn] if spot_queue_arn else []
        if spot_job_definition_name:
            spot.append(f"{batch}:job-definition/{spot_job_definition_name}:*")
        return {"Version": "2012-10-17", "Statement": [
            {"Sid": "ReadJobs", "Effect": "Allow", "Action": READ_ACTIONS, "Resource": "*"},
            # Any revision: a continuation reuses its predecessor's job definition ARN.
            {"Sid": "SubmitContinuations", "Effect": "Allow", "Action": "batch:SubmitJob",
             "Resource": [*queue_arn_resources(queue_arn),
                          f"{batch}:job-definition/{job_definition_name}:*", *spot]},
            # Tags on SubmitJob are authorized as TagResource on the new job, at creation only.
            {"Sid": "TagContinuations", "Effect": "Allow", "Action": "batch:TagResource",
             "Resource": f"{batch}:job/*",
             "Condition": {"StringEquals": {"batch:CreateAction": "SubmitJob"}}},
            # Only jobs of a run the controller manages: they carry the min-nodes tag.
            {"Sid": "CancelManagedJobs", "Effect": "Allow", "Action": "batch:CancelJob",
             "Resource": f"{batch}:job/*",
             "Condition": {"Null": {f"aws:ResourceTag/{TAG_MIN_NODES}": "false"}}},
            # Only a Spot gang's array job (`submit --spot-gang` tags it).
            {"Sid": "CancelGangs", "Effect": "Allow", "Action": "batch:CancelJob",
             "Resource": f"{batch}:job/*",
             "Condition": {"Null": {f"aws:ResourceTag/{TAG_GANG}": "false"}}},
            {"Sid": "Logs", "Effect": "Allow",
             "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": f"{_ref(self.log_group, 'arn')}:*"},
            {"Sid": "DeadLetters", "Effect": "Allow", "Action": "sqs:SendMessage",
             "Resource": _ref(self.dead_letter_queue, "arn")},
            # A producer to a KMS-encrypted queue needs both (SQS developer guide,
            # sqs-key-management: "kms:GenerateDataKey" and "kms:Decrypt"); Decrypt also
            # opens the function's environment, encrypted with the same key.
            {"Sid": "StackKey", "Effect": "Allow",
             "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": enc.key.arn},
        ]}

    def _add_function(self, queue_name: str, spot_queue_name: str | None) -> LambdaFunction:
        controller = self._config.controller
        node = self._config.node
        # The stack's multi-node queue, then fallback queues in failover order: each with the
        # ranks, vCPUs and memory of a whole node (continuation.decide.QueueSpec).
        queues = queue_specs_json(queue_name, node.vcpus, node.vcpus, node.memory_mib)
        path = f"${{path.module}}/{self.package.path}"
        return LambdaFunction(
            self, "function", count=continuation_count(), function_name=self._function_name,
            description="Continues runs of multi-node jobs on fewer nodes (continuation/README.md)",
            role=_ref(self.role, "arn"), runtime=controller.runtime, handler=controller.handler,
            filename=path, source_code_hash=f"${{filebase64sha256(\"{path}\")}}",
            memory_size=controller.memory_mib, timeout=controller.timeout_s,
            # One decision at a time: apply's look-before-submit relies on it (README there).
            reserved_concurrent_executions=1,
            dead_letter_config=LambdaFunctionDeadLetterConfig(
                target_arn=_ref(self.dead_letter_queue, "arn")),
            # Where the sweep also looks for Spot gangs whose events were lost.
            environment=LambdaFunctionEnvironment(variables={
                QUEUES_ENV: queues, **({SPOT_QUEUE_ENV: spot_queue_name} if spot_queue_name
                                       else {})}),
            kms_key_arn=self._encryption.key.arn,
            # Lambda's default, written out: a trace only when a caller sampled one, so no
            # X-Ray cost and no X-Ray permissions.
            tracing_config=LambdaFunctionTracingConfig(mode="PassThrough"),
            depends_on=[self.log_group], tags=tags(self._cluster))

    def _add_rule(self, id_: str, label: str, description: str,
                  **trigger: str) -> CloudwatchEventRule:
        """A rule on the default bus invoking the function, undeliverable events to the DLQ."""
        count = continuation_count()
        rule = CloudwatchEventRule(self, id_, count=count,
                                   name=name(self._cluster, "continuation", label),
                                   description=description, tags=tags(self._cluster), **trigger)
        CloudwatchEventTarget(
            self, f"{id_}_target", count=count, rule=_ref(rule, "name"),
            arn=_ref(self.function, "arn"),
            dead_letter_config=CloudwatchEventTargetDeadLetterConfig(
                arn=_ref(self.dead_letter_queue, "arn")))
        LambdaPermission(self, f"{id_}_permission", count=count,
                         statement_id=f"events-{label}", action="lambda:InvokeFunction",
                         function_name=_ref(self.function, "function_name"),
                         principal="events.amazonaws.com", source_arn=_ref(rule, "arn"))
        return rule

    def _add_queue_policy(self, rules: list[CloudwatchEventRule]) -> SqsQueuePolicy:
        """EventBridge may send this queue the events of these rules only (EventBridge user
        guide, eb-rule-dlq: the queue's policy must allow events.amazonaws.com)."""
        queue_arn = _ref(self.dead_letter_queue, "arn")
        return SqsQueuePolicy(
            self, "dead_letter_queue_policy", count=continuation_count(),
            queue_url=_ref(self.dead_letter_queue, "url"), policy=json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Sid": "RuleDeadLetters", "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage", "Resource": queue_arn,
                    "Condition": {"ArnEquals": {
                        "aws:SourceArn": [_ref(rule, "arn") for rule in rules]}}}]}))

    def _add_alarm(self, id_: str, namespace: str, metric: str, dimensions: dict[str, str],
                   stat: str, description: str, topic_arn: str) -> CloudwatchMetricAlarm:
        return CloudwatchMetricAlarm(
            self, id_, count=continuation_count(),
            alarm_name=name(self._cluster, "continuation", id_.removesuffix("_alarm")
                            .replace("_", "-")),
            alarm_description=description, namespace=namespace, metric_name=metric,
            dimensions=dimensions, statistic=stat, period=PERIOD_S, evaluation_periods=1,
            threshold=0, comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching", alarm_actions=[topic_arn],
            tags=tags(self._cluster))
