"""Job logs, a queue dashboard, alarms and failed-job notifications."""

from __future__ import annotations

import json

from cdktf import Token
from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import CloudwatchEventTarget
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from stacks.config import PlatformConfig, name, tags
from stacks.encryption import Encryption
from stacks.fallback import queue_arn_filter
from stacks.policy import Statement, policy_document

NAMESPACE = "AWS/Batch"
# AWS/Batch publishes state-transition counts and durations, per JobQueueName only;
# there is no gauge of running jobs.
TRANSITION_METRICS = ("JobsSubmitted", "JobsMovedToRunning", "JobsMovedToSucceeded",
                      "JobsMovedToFailed", "JobsRetried")
DURATION_METRICS = ("JobSubmittedToRunnableDuration", "JobAttemptRunnableToStartingDuration",
                    "JobAttemptExecutionDuration")
PERIOD_S = 300
MS_PER_S = 1000  # AWS/Batch durations are milliseconds
# (docs.aws.amazon.com/batch/latest/userguide/using_cloudwatch_metrics.html).


def milliseconds(seconds: float) -> float:
    """The one conversion from our seconds to the unit of AWS/Batch duration metrics."""
    return seconds * MS_PER_S


class Monitoring(Construct):
    """Log group and alert topic first (jobs need them); queue watches once the queue exists."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 encryption: Encryption, alarm_email: str) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self._config = config
        self._encryption = encryption
        self.log_group = CloudwatchLogGroup(
            self, "job_log_group", name=f"/aws/batch/{cluster}",
            retention_in_days=config.limits.log_retention_days,
            kms_key_id=encryption.key.arn, tags=tags(cluster))
        self.topic = self._add_topic(alarm_email)

    def _add_topic(self, alarm_email: str) -> SnsTopic:
        topic = SnsTopic(self, "alerts", name=name(self._cluster, "alerts"),
                         kms_master_key_id=self._encryption.key.arn, tags=tags(self._cluster))
        SnsTopicPolicy(self, "alerts_policy", arn=topic.arn, policy=policy_document(
            self, "alerts_policy_doc", [Statement(
                actions=["sns:Publish"], resources=[topic.arn],
                principals={"Service": ["events.amazonaws.com", "cloudwatch.amazonaws.com"]},
                conditions=[("StringEquals", "aws:SourceAccount",
                             [self._encryption.account_id])])]))
        SnsTopicSubscription(
            self, "alerts_email", topic_arn=topic.arn, protocol="email", endpoint=alarm_email,
            # Raw expression: CDKTF's Op.neq renders 'undefined' from Python.
            count=Token.as_number('${var.alarm_email == "" ? 0 : 1}'))
        return topic

    def watch_queue(self, queue_name: str, queue_arn: str) -> CloudwatchDashboard:
        """Alarms, the failed-job event rule and the dashboard for one job queue."""
        failed = self._add_alarm("jobs_failed", "JobsMovedToFailed", "Sum", 0,
                                 "A job in the queue moved to FAILED.", queue_name)
        # Emitted only when a job reaches STARTING: a job that never starts is cancelled by the
        # queue's RUNNABLE time limit instead, and then counts in JobsMovedToFailed.
        after_s = self._config.limits.runnable_alarm_threshold_s
        waiting = self._add_alarm(
            "runnable_too_long", "JobAttemptRunnableToStartingDuration", "Maximum",
            milliseconds(after_s),
            f"A job waited RUNNABLE more than {after_s // 60} minutes before starting: "
            "capacity was short, or a job asks for more than fits.", queue_name)
        self._add_failed_job_rule(queue_arn)
        return self._add_dashboard(queue_name, [failed.arn, waiting.arn])

    def _add_alarm(self, id_: str, metric: str, stat: str, threshold: float, description: str,
                   queue_name: str) -> CloudwatchMetricAlarm:
        return CloudwatchMetricAlarm(
            self, id_, alarm_name=name(self._cluster, id_.replace("_", "-")),
            alarm_description=description, namespace=NAMESPACE, metric_name=metric,
            dimensions={"JobQueueName": queue_name}, statistic=stat, period=PERIOD_S,
            evaluation_periods=1, threshold=threshold,
            comparison_operator="GreaterThanThreshold", treat_missing_data="notBreaching",
            alarm_actions=[self.topic.arn], tags=tags(self._cluster))

    def _add_failed_job_rule(self, queue_arn: str) -> CloudwatchEventTarget:
        rule = CloudwatchEventRule(
            self, "job_failed_rule", name=name(self._cluster, "job-failed"),
            description="Notify when a job of the multi-node queue or a fallback queue fails",
            # A run moved to a fallback queue fails there too (stacks/fallback.py).
            event_pattern=json.dumps({"source": ["aws.batch"],
                                      "detail-type": ["Batch Job State Change"],
                                      "detail": {"status": ["FAILED"],
                                                 "jobQueue": queue_arn_filter(queue_arn)}}),
            tags=tags(self._cluster))
        return CloudwatchEventTarget(self, "job_failed_target", rule=rule.name,
                                     arn=self.topic.arn)

    def _add_dashboard(self, queue_name: str, alarm_arns: list[str]) -> CloudwatchDashboard:
        region = self._encryption.region
        log_url = (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
                   f"#logsV2:log-groups/log-group/$252Faws$252Fbatch$252F{self._cluster}")

        def metrics_widget(title: str, metrics: tuple[str, ...], stat: str, y: int,
                           unit: str) -> dict:
            return {"type": "metric", "x": 0, "y": y, "width": 24, "height": 6, "properties": {
                "title": f"{title} ({unit})", "region": region, "stat": stat, "period": PERIOD_S,
                "view": "timeSeries", "yAxis": {"left": {"label": unit, "showUnits": False}},
                "metrics": [[NAMESPACE, m, "JobQueueName", queue_name] for m in metrics]}}

        body = {"widgets": [
            {"type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": {
                "markdown": f"## Queue {queue_name}\n[Job logs]({log_url}) - node streams are "
                            "named mnp/default/<task id>; `python -m jobs logs JOB_ID` reads "
                            "them per node."}},
            metrics_widget("Job state transitions", TRANSITION_METRICS, "Sum", 2, "count"),
            metrics_widget("Durations", DURATION_METRICS, "Average", 8, "milliseconds"),
            {"type": "alarm", "x": 0, "y": 14, "width": 24, "height": 3,
             "properties": {"title": "Alarms", "alarms": alarm_arns}},
        ]}
        return CloudwatchDashboard(self, "dashboard", dashboard_name=name(self._cluster, "batch"),
                                   dashboard_body=json.dumps(body))
