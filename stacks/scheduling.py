"""Job queues and job definitions: the multi-node one and the optional single-node Spot one."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf import TerraformResource
from cdktf_cdktf_provider_aws.batch_job_definition import (
    BatchJobDefinition,
    BatchJobDefinitionRetryStrategy,
    BatchJobDefinitionRetryStrategyEvaluateOnExit,
    BatchJobDefinitionTimeout,
)
from cdktf_cdktf_provider_aws.batch_job_queue import (
    BatchJobQueue,
    BatchJobQueueComputeEnvironmentOrder,
    BatchJobQueueJobStateTimeLimitAction,
)
from constructs import Construct

from launcher.contract import (
    EVALUATE_ON_EXIT,
    NETWORK_ENV,
    OUTPUT_PATH_ENV,
    PRECHECK_ENV,
    RANKS_PER_NODE_ENV,
    RENDEZVOUS_SECRET_ENV,
    RENDEZVOUS_TIMEOUT_ENV,
    RUN_AS_ENV,
    STUCK_RUNNABLE_REASONS,
    TERM_GRACE_ENV,
)
from stacks import efa, spot_interruption
from stacks.compute import Compute
from stacks.config import NodeDefaults, PlatformConfig, name, tags
from stacks.jsontext import Template, dumps
from stacks.variables import EFA_ENABLED, FSX_ENABLED, SPOT_ENABLED, counted_ref

EFS_VOLUME = "efs"
FSX_VOLUME = "fsx"


@dataclass(frozen=True)
class JobWiring:
    """Resource handles a job's container needs, as Terraform references."""

    image: str
    job_role_arn: str
    execution_role_arn: str
    file_system_id: str
    access_point_id: str
    log_group_name: str
    region: str
    rendezvous_secret_arn: str


def _env(name_: str, value: str) -> dict[str, str]:
    return {"name": name_, "value": value}


# A multi-node TCP job skips the network self-check unless its submitter asks for it.
TCP_MULTINODE = ((NETWORK_ENV, "tcp"), (PRECHECK_ENV, "0"))


def efa_environment() -> Template:
    """The fabric's environment entries, chosen at plan: EFA and its MPI settings, or TCP."""
    on = ", ".join(json.dumps(_env(*pair)) for pair in ((NETWORK_ENV, "efa"), *efa.ENVIRONMENT))
    off = ", ".join(json.dumps(_env(*pair)) for pair in TCP_MULTINODE)
    return Template(f"%{{ if {EFA_ENABLED} }}{on}%{{ else }}{off}%{{ endif }}")


def fabric_environment(*, multinode: bool, fabric: bool) -> list:
    """EFA's entries (chosen at plan), else TCP: no self-check setting on a single node."""
    if fabric:
        return [efa_environment()]
    return [_env(*pair) for pair in (TCP_MULTINODE if multinode else TCP_MULTINODE[:1])]


def shared_file_system(wiring: JobWiring, mount_path: str) -> dict:
    """`volumes` and `mountPoints`: EFS over TLS through the access point, as the job role."""
    return {
        "volumes": [{"name": EFS_VOLUME, "efsVolumeConfiguration": {
            "fileSystemId": wiring.file_system_id,
            "transitEncryption": "ENABLED",
            "authorizationConfig": {"accessPointId": wiring.access_point_id, "iam": "ENABLED"}}}],
        "mountPoints": [{"sourceVolume": EFS_VOLUME, "containerPath": mount_path,
                         "readOnly": False}],
    }


def log_configuration(wiring: JobWiring, stream_prefix: str) -> dict:
    """awslogs into the stack's job log group, streams named '<prefix>/...'."""
    return {"logDriver": "awslogs", "options": {
        "awslogs-group": wiring.log_group_name, "awslogs-region": wiring.region,
        "awslogs-stream-prefix": stream_prefix}}


def when_fsx(base: list[dict], extra: dict) -> Template:
    """A JSON list, chosen at plan: `base` plus `extra` when enable_fsx, else `base` alone."""
    return Template(f"%{{ if {FSX_ENABLED} }}{json.dumps([*base, extra])}"
                    f"%{{ else }}{json.dumps(base)}%{{ endif }}")


def storage(node: NodeDefaults, wiring: JobWiring, *, fsx_on: bool) -> dict:
    """`volumes` and `mountPoints`: EFS always; with FSx synthesized, the Lustre host mount."""
    shared = shared_file_system(wiring, node.efs_mount_path)
    if not fsx_on:
        return shared
    # Lustre is mounted on the instance (the launch template's user data), so the container
    # gets it as a host path (docs.aws.amazon.com/batch/latest/APIReference/API_Volume.html).
    return {"volumes": when_fsx(shared["volumes"], {"name": FSX_VOLUME,
                                                    "host": {"sourcePath": node.fsx_mount_path}}),
            "mountPoints": when_fsx(shared["mountPoints"], {"sourceVolume": FSX_VOLUME,
                                                            "containerPath": node.fsx_mount_path,
                                                            "readOnly": False})}


def container_properties(node: NodeDefaults, wiring: JobWiring, *, multinode: bool,
                         efa_on: bool = False, fsx_on: bool = False,
                         term_grace_s: int | None = None) -> dict:
    """The container block (Batch API shape) of both job definitions; EFA only on multinode;
    MNP_TERM_GRACE when `term_grace_s` (else the launcher's default)."""
    fabric = multinode and efa_on
    container = {
        "image": wiring.image,
        "command": list(node.command),
        "resourceRequirements": [{"type": "VCPU", "value": str(node.vcpus)},
                                 {"type": "MEMORY", "value": str(node.memory_mib)}],
        "environment": [
            # The container cannot see its vCPU reservation (nproc shows the host's).
            {"name": RANKS_PER_NODE_ENV, "value": str(node.vcpus)},
            {"name": RENDEZVOUS_TIMEOUT_ENV, "value": str(node.rendezvous_timeout_s)},
            {"name": OUTPUT_PATH_ENV, "value": f"{node.efs_mount_path}/output"},
            # The fabric MPI must use (CONTRACTS.md: MNP_NETWORK); single-node jobs: TCP.
            *fabric_environment(multinode=multinode, fabric=fabric),
            # The launcher starts as root (`user`), keeps the secret, then becomes this account
            # for everything it starts (README: Isolation between jobs of one stack).
            {"name": RUN_AS_ENV, "value": node.user},
            *([_env(TERM_GRACE_ENV, str(term_grace_s))] if term_grace_s is not None else []),
        ],
        "jobRoleArn": wiring.job_role_arn,
        "executionRoleArn": wiring.execution_role_arn,
        # `docker run --user` (docs.aws.amazon.com/batch/latest/APIReference/
        # API_ContainerProperties.html, user): root for the launcher only (see RUN_AS_ENV).
        "user": "0:0",
        "privileged": False,
        **storage(node, wiring, fsx_on=fsx_on),
        "logConfiguration": log_configuration(wiring, "mnp"),
        # Open MPI's shared-memory transport needs more than Docker's 64 MiB /dev/shm.
        "linuxParameters": {"sharedMemorySize": node.shared_memory_mib,
                            "initProcessEnabled": True},
        # EFA pins its buffers, so memlock stays unlimited (as in aws-samples/aws-batch-efa
        # batch-resources/job_definition.json).
        "ulimits": [{"name": "memlock", "softLimit": -1, "hardLimit": -1},
                    {"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
    }
    if fabric:
        # As many uverbs devices as the launch template has EFA interfaces ([] when off).
        container["linuxParameters"]["devices"] = Template(
            f"${{jsonencode(local.{efa.DEVICES_LOCAL})}}")
    # Every node derives its job's keys from it (the rendezvous; the checkpoint key, single
    # nodes too); the execution role fetches it at start
    # (docs.aws.amazon.com/batch/latest/userguide/specifying-sensitive-data-secrets.html).
    container["secrets"] = [{"name": RENDEZVOUS_SECRET_ENV,
                             "valueFrom": wiring.rendezvous_secret_arn}]
    return container


def node_properties(node: NodeDefaults, wiring: JobWiring, *, efa_on: bool = False,
                    fsx_on: bool = False) -> dict:
    """One open-ended node range '0:' so that submit-time nodeOverrides.numNodes works."""
    return {"mainNode": 0, "numNodes": node.num_nodes,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container_properties(
                node, wiring, multinode=True, efa_on=efa_on, fsx_on=fsx_on)}]}


def retry_rules(rules: tuple[dict[str, str], ...] = EVALUATE_ON_EXIT,
                ) -> list[BatchJobDefinitionRetryStrategyEvaluateOnExit]:
    """evaluateOnExit rules as provider blocks (default: the contract's RETRY 3, 4, 143, Host
    EC2*)."""
    keys = {"onStatusReason": "on_status_reason", "onExitCode": "on_exit_code",
            "onReason": "on_reason", "action": "action"}
    return [BatchJobDefinitionRetryStrategyEvaluateOnExit(**{keys[k]: v for k, v in rule.items()})
            for rule in rules]


def add_job_queue(scope: Construct, id_: str, *, queue_name: str, environment_arn: str,
                  cancel_after_s: int, cluster: str, count: float | None = None) -> BatchJobQueue:
    """A queue on one compute environment that cancels jobs stuck RUNNABLE."""
    return BatchJobQueue(
        scope, id_, name=queue_name, state="ENABLED", priority=1, count=count,
        compute_environment_order=[BatchJobQueueComputeEnvironmentOrder(
            order=1, compute_environment=environment_arn)],
        # A job that cannot get capacity would otherwise sit RUNNABLE forever; it is
        # cancelled (then FAILED, which the failed-job alarm counts).
        job_state_time_limit_action=[BatchJobQueueJobStateTimeLimitAction(
            state="RUNNABLE", action="CANCEL", max_time_seconds=cancel_after_s, reason=reason)
            for reason in STUCK_RUNNABLE_REASONS],
        tags=tags(cluster))


def _when_spot(reference: str) -> str:
    """An output value: the Spot resource's attribute, or '' when the Spot queue is off."""
    return f'${{{SPOT_ENABLED} ? {reference} : ""}}'


def _spot_or_main(spot: TerraformResource, main: TerraformResource, attribute: str) -> str:
    """`${...}` text without quotes: the Spot resource's attribute, else the main one's."""
    return (f"${{{SPOT_ENABLED} ? {counted_ref(spot, attribute)} : "
            f"{main.terraform_resource_type}.{main.friendly_unique_id}.{attribute}}}")


class Scheduling(Construct):
    """The multi-node queue and job definition; the Spot pair exists when enable_spot_queue."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 compute: Compute, wiring: JobWiring, spot_count: float) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self._config = config
        node = config.node
        # --- Queues
        self.job_queue = self._add_queue("job_queue", "mpi", compute.mnp_environment.arn)
        self.spot_job_queue = self._add_queue("spot_job_queue", "spot",
                                              compute.spot_environment_arn, count=spot_count)
        # --- Job definitions
        self.job_definition = self._add_job_definition(
            "job_definition", "mpi", "multinode",
            node_properties=dumps(node_properties(node, wiring,
                                                  efa_on=config.settings.enable_efa,
                                                  fsx_on=config.settings.enable_fsx)))
        # Single node: the launcher then runs the command under a local mpiexec. Its ranks
        # may checkpoint until just before the Spot instances' stop timeout.
        self.spot_job_definition = self._add_job_definition(
            "spot_job_definition", "spot", "container", count=spot_count,
            container_properties=dumps(container_properties(
                node, wiring, multinode=False, fsx_on=config.settings.enable_fsx,
                term_grace_s=spot_interruption.TERM_GRACE_S)))
        main = self.job_queue
        # For JSON text (an event pattern): no quotes inside, so when the Spot queue is off
        # this names the multi-node queue again, which a pattern's list may hold twice.
        self.spot_queue_arn_or_main = _spot_or_main(self.spot_job_queue, main, "arn")
        # The same for a policy's resource: a run of Spot gangs is continued on this pair.
        self.spot_job_definition_name_or_main = _spot_or_main(
            self.spot_job_definition, self.job_definition, "name")
        # The controller's sweep looks there for gangs (never empty: with the Spot queue off
        # it names the multi-node queue, which the sweep then lists once).
        self.spot_queue_name_or_main = _spot_or_main(self.spot_job_queue, main, "name")
        self.spot_queue_name = _when_spot(counted_ref(self.spot_job_queue, "name"))
        self.spot_job_definition_name = _when_spot(counted_ref(self.spot_job_definition, "name"))

    def _add_queue(self, id_: str, label: str, environment_arn: str, *,
                   count: float | None = None) -> BatchJobQueue:
        return add_job_queue(self, id_, queue_name=name(self._cluster, label),
                             environment_arn=environment_arn, count=count,
                             cancel_after_s=self._config.limits.runnable_cancel_after_s,
                             cluster=self._cluster)

    def _add_job_definition(self, id_: str, label: str, type_: str, *,
                            count: float | None = None, **properties: str) -> BatchJobDefinition:
        node = self._config.node
        return BatchJobDefinition(
            self, id_, name=name(self._cluster, label), type=type_, count=count,
            platform_capabilities=["EC2"], propagate_tags=True,
            retry_strategy=BatchJobDefinitionRetryStrategy(attempts=node.attempts,
                                                           evaluate_on_exit=retry_rules()),
            timeout=BatchJobDefinitionTimeout(attempt_duration_seconds=node.attempt_timeout_s),
            tags=tags(self._cluster), **properties)
