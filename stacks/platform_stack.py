"""The one stack: wires the constructs together and publishes what the jobs CLI reads."""

from __future__ import annotations

from cdktf import LocalBackend, S3Backend, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.provider import AwsProvider
from constructs import Construct

from stacks.compliance import Compliance
from stacks.compute import Compute, NodePlacement
from stacks.config import PlatformConfig
from stacks.continuation import Continuation
from stacks.data import DataBucket
from stacks.efa import Efa
from stacks.encryption import Encryption
from stacks.fallback import Fallback
from stacks.iam import Roles
from stacks.instance_types import InstanceTypes
from stacks.lustre import Lustre
from stacks.monitoring import Monitoring
from stacks.network import Network
from stacks.registry import Registry
from stacks.scheduling import JobWiring, Scheduling
from stacks.secrets import RendezvousSecret
from stacks.stage_out import StageOutRule
from stacks.staging import StagingJobs
from stacks.storage import SharedStorage
from stacks.variables import FSX_ENABLED, Variables, spot_count
from stacks.zones import Zones

# Not emitted, though Terraform would read them: `terraform.required_version` (main.py writes it
# to a file of its own beside the stack) and `moved` blocks. checkov's terraform_json parser
# (3.3.30) stops on both and would then check nothing.


class PlatformStack(TerraformStack):
    """VPC, EFS, ECR, IAM, Batch and monitoring for multi-node MPI jobs."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig) -> None:
        super().__init__(scope, id_)
        self._add_backend(config, id_)
        AwsProvider(self, "aws", region=config.settings.region)
        variables = Variables(self, "variables", settings=config.settings,
                              staging=config.staging)
        cluster = variables.cluster_name.string_value
        # --- Foundations
        encryption = Encryption(self, "encryption", config=config, cluster=cluster)
        zones = Zones(self, "zones", instance_types=variables.instance_types,
                      pin=variables.placement_zone_id,
                      region=config.settings.region)
        network = Network(self, "network", config=config, cluster=cluster,
                          vpc_cidr=variables.vpc_cidr.string_value, zones=zones,
                          encryption=encryption)
        storage = SharedStorage(self, "storage", config=config, cluster=cluster,
                                variables=variables, network=network, encryption=encryption)
        data = DataBucket(self, "data", cluster=cluster, variables=variables,
                          encryption=encryption)
        registry = Registry(self, "registry", config=config, cluster=cluster,
                            encryption=encryption)
        monitoring = Monitoring(self, "monitoring", config=config, cluster=cluster,
                                encryption=encryption,
                                alarm_email=variables.alarm_email.string_value)
        secret = RendezvousSecret(self, "rendezvous", config=config, cluster=cluster,
                                  encryption=encryption)
        roles = Roles(self, "iam", cluster=cluster, encryption=encryption,
                      repository_arn=registry.repository.arn,
                      log_group_arn=monitoring.log_group.arn, storage=storage,
                      rendezvous_secret_arn=secret.secret.arn)
        # --- FSx for Lustre (counted by enable_fsx; only in a stack synthesized with ENABLE_FSX)
        lustre = (Lustre(self, "lustre", config=config, cluster=cluster, variables=variables,
                         network=network, encryption=encryption, data_bucket=data.name)
                  if config.settings.enable_fsx else None)
        # --- Batch
        instance_types = InstanceTypes(self, "instance_types",
                                       instance_types=variables.instance_types,
                                       max_vcpus=variables.max_vcpus)
        efa = (Efa(self, "efa", instance_types=instance_types)
               if config.settings.enable_efa else None)
        compute = Compute(
            self, "compute", config=config, cluster=cluster,
            placement=NodePlacement(
                instance_types=variables.instance_types.list_value,
                max_vcpus=variables.max_vcpus.number_value,
                security_group_id=network.compute_security_group.id,
                instance_profile_arn=roles.instance_profile.arn),
            pinned_subnet_id=network.pinned_subnet.id,
            spot_count=spot_count(),
            efa=efa, lustre=lustre, checks=instance_types.capacity_preconditions())
        wiring = JobWiring(
            image=f"{registry.repository.repository_url}:{variables.image_tag.string_value}",
            job_role_arn=roles.job_role.arn, execution_role_arn=roles.execution_role.arn,
            file_system_id=storage.file_system.id, access_point_id=storage.access_point.id,
            log_group_name=monitoring.log_group.name, region=encryption.region,
            rendezvous_secret_arn=secret.secret.arn)
        scheduling = Scheduling(self, "scheduling", config=config, cluster=cluster,
                                compute=compute, wiring=wiring, spot_count=spot_count())
        fallback = Fallback(
            self, "fallback", config=config, cluster=cluster,
            fallback_types=variables.fallback_instance_types, max_vcpus=variables.max_vcpus,
            compute=compute, zones=(zones.pinned_zone_id, zones.second_zone_id),
            subnet_ids=(network.pinned_subnet.id, network.private_subnets[1].id))
        # --- Data in and out: staging jobs, and stage-out when a multi-node job ends
        staging = StagingJobs(self, "staging", config=config, cluster=cluster, data=data,
                              network=network, storage=storage, wiring=wiring,
                              region=encryption.region)
        StageOutRule(self, "stage_out", cluster=cluster, queue_arn=scheduling.job_queue.arn,
                     staging=staging)
        storage.add_policy([roles.job_role.arn, staging.job_role.arn])
        # --- Audit (counted by enable_compliance)
        Compliance(self, "compliance", cluster=cluster, encryption=encryption,
                   tcp_only=not config.settings.enable_efa)
        # --- The continuation controller (counted by enable_continuation)
        continuation = Continuation(
            self, "continuation", config=config, cluster=cluster, encryption=encryption,
            queue_name=scheduling.job_queue.name, queue_arn=scheduling.job_queue.arn,
            job_definition_name=scheduling.job_definition.name,
            alarm_topic_arn=monitoring.topic.arn,
            spot_queue_arn=scheduling.spot_queue_arn_or_main,
            spot_job_definition_name=scheduling.spot_job_definition_name_or_main,
            spot_queue_name=scheduling.spot_queue_name_or_main)
        dashboard = monitoring.watch_queue(scheduling.job_queue.name, scheduling.job_queue.arn)
        self._add_outputs(config, variables, registry, storage, monitoring, scheduling,
                          dashboard_name=dashboard.dashboard_name, region=encryption.region)
        TerraformOutput(self, "continuation_function_name", value=continuation.function_name,
                        description="The continuation controller's function ('' when off)")
        TerraformOutput(self, "continuation_log_group_name", value=continuation.log_group_name,
                        description="Log group of its decisions, one JSON line each ('' when off)")
        TerraformOutput(self, "fallback_job_queue_names", value=fallback.queue_names,
                        description="Fallback multi-node queues, in failover order")
        self._add_data_outputs(data, staging)
        self._add_fsx_outputs(lustre)

    def _add_data_outputs(self, data: DataBucket, staging: StagingJobs) -> None:
        """Where `submit --stage-in/--stage-out` and `jobs fetch` find the data (CONTRACTS.md)."""
        for output_id, value, description in [
            ("data_bucket", data.name, "S3 bucket of job inputs and outputs"),
            ("data_input_prefix", data.input_prefix,
             "Folder of the data bucket stage-in may read (--stage-in below it)"),
            ("data_output_prefix", data.output_prefix,
             "Folder of the data bucket stage-out writes (--stage-out below it)"),
            ("staging_job_queue_name", staging.job_queue.name, "Queue of the staging jobs"),
            ("staging_job_definition_name", staging.job_definition.name,
             "Staging job definition (python -m staging in|out)"),
        ]:
            TerraformOutput(self, output_id, value=value, description=description)

    def _add_outputs(self, config: PlatformConfig, variables: Variables, registry: Registry,
                     storage: SharedStorage, monitoring: Monitoring, scheduling: Scheduling, *,
                     dashboard_name: str, region: str) -> None:
        """The stack's outputs: fixed names, because the jobs CLI reads them."""
        for output_id, value, description in [
            ("job_queue_name", scheduling.job_queue.name, "Queue for multi-node jobs"),
            ("job_queue_arn", scheduling.job_queue.arn, "ARN of the multi-node job queue"),
            ("job_definition_name", scheduling.job_definition.name, "Multi-node job definition"),
            ("job_definition_arn", scheduling.job_definition.arn,
             "ARN (with revision) of the multi-node job definition"),
            ("max_vcpus", variables.max_vcpus.number_value,
             "Compute environment ceiling: nodes x vCPUs of running jobs"),
            ("ecr_repository_url", registry.repository.repository_url,
             "Push the solver image here"),
            ("image_tag", variables.image_tag.string_value, "Image tag the job definition runs"),
            ("efs_file_system_id", storage.file_system.id, "Shared file system"),
            ("efs_access_point_id", storage.access_point.id, "Access point jobs mount through"),
            ("efs_mount_path", config.node.efs_mount_path, "Where jobs see the file system"),
            ("log_group_name", monitoring.log_group.name, "CloudWatch log group of job output"),
            ("dashboard_url",
             f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
             f"#dashboards/dashboard/{dashboard_name}", "Queue dashboard"),
            ("region", region, "AWS region of the stack"),
            ("spot_job_queue_name", scheduling.spot_queue_name,
             "Single-node Spot queue ('' when off)"),
            ("spot_job_definition_name", scheduling.spot_job_definition_name,
             "Single-node Spot job definition ('' when off)"),
        ]:
            TerraformOutput(self, output_id, value=value, description=description)

    def _add_fsx_outputs(self, lustre: Lustre | None) -> None:
        """What preflight and users read of the Lustre switch: '' when it is off."""
        file_system_id, mount_path = "", ""
        if lustre:
            file_system_id = f'${{{FSX_ENABLED} ? {lustre.ref("id")} : ""}}'
            mount_path = f'${{{FSX_ENABLED} ? "{lustre.mount_path}" : ""}}'
        TerraformOutput(self, "fsx_file_system_id", value=file_system_id,
                        description="FSx for Lustre file system ('' when off)")
        TerraformOutput(self, "fsx_mount_path", value=mount_path,
                        description="Where jobs see FSx for Lustre ('' when off)")

    def _add_backend(self, config: PlatformConfig, id_: str) -> None:
        state = config.state
        if state is None:
            # State beside the project, not inside cdktf.out, which every synth rewrites.
            LocalBackend(self, path=f"../../../terraform.{id_}.tfstate")
            return
        S3Backend(self, bucket=state.bucket, key=state.key, region=state.region, encrypt=True)
        # S3's own lock file (Terraform >= 1.10) instead of a DynamoDB table; CDKTF 0.21's
        # S3Backend has no field for it
        # (developer.hashicorp.com/terraform/language/backend/s3#use_lockfile).
        self.add_override("terraform.backend.s3.use_lockfile", True)
