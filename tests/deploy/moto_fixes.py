"""Where moto 5.2.5 answers otherwise than AWS does for calls the stack makes: each fix cites AWS.

Applied once, in the emulator's own process, before it serves (see aws_emulator).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

BATCH_SERVICE = "batch.amazonaws.com"


def batch_compute_environment_defaults() -> None:
    """CreateComputeEnvironment as Batch takes it: serviceRole and securityGroupIds optional.

    Without serviceRole Batch uses (and creates) its service-linked role.
    API_CreateComputeEnvironment.html, serviceRole: "If the AWS Batch service-linked role doesn't
    exist in your account, and no role is specified here, the service attempts to create the AWS
    Batch service-linked role in your account." moto refuses with "ServiceRole is required".
    """
    from moto.batch.models import BatchBackend
    from moto.iam import models as iam_models
    from moto.iam.exceptions import NotFoundException as IAMNotFoundException

    # Its name is AWSServiceRoleForBatch (batch/latest/userguide/using-service-linked-roles.html);
    # moto would spell it AWSServiceRoleForbatch.
    iam_models.SERVICE_NAME_CONVERSION.setdefault("batch", "Batch")
    original = BatchBackend.create_compute_environment

    def create(self: Any, compute_environment_name: str, _type: str, state: str,
               compute_resources: dict[str, Any], service_role: str, *args: Any,
               **kwargs: Any) -> Any:
        if compute_resources is not None:
            compute_resources.setdefault("securityGroupIds", [])
        if not service_role:
            try:
                role = self.iam_backend.get_role("AWSServiceRoleForBatch")
            except IAMNotFoundException:
                role = self.iam_backend.create_service_linked_role(BATCH_SERVICE, "", "")
            service_role = role.arn
        return original(self, compute_environment_name, _type, state, compute_resources,
                        service_role, *args, **kwargs)

    BatchBackend.create_compute_environment = create
    validate = BatchBackend._validate_compute_resources

    def validate_with_template(self: Any, resources: dict[str, Any]) -> None:
        # "One or more security groups must be specified, either in securityGroupIds or using
        # a launch template referenced in launchTemplate" (API_ComputeResource.html): an EFA
        # template's interfaces carry them. moto looks only at securityGroupIds.
        template = resources.get("launchTemplate")
        if resources.get("securityGroupIds") or not template:
            return validate(self, resources)
        ec2 = self.ec2_backend
        found = (ec2.get_launch_template(template["launchTemplateId"])
                 if template.get("launchTemplateId")
                 else ec2.get_launch_template_by_name(template["launchTemplateName"]))
        data = found.latest_version().data
        groups = [g for nic in data.get("NetworkInterfaces", []) for g in nic.get("Groups", [])]
        return validate(self, {**resources, "securityGroupIds":
                               groups or data.get("SecurityGroupIds", [])})

    BatchBackend._validate_compute_resources = validate_with_template


def job_definition_node_properties(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """DescribeJobDefinitions returns nodeProperties (API_JobDefinition.html); moto drops it.

    `patch` sets the attribute: pytest's monkeypatch.setattr undoes it after a test session.
    """
    from moto.batch.models import JobDefinition

    original = JobDefinition.describe

    def describe(self: Any) -> dict[str, Any]:
        result = original(self)
        if self.node_properties is not None:
            result["nodeProperties"] = self.node_properties
        return result

    patch(JobDefinition, "describe", describe)


def input_template_quotes_strings(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """An unquoted <variable> of a JSON input template becomes a JSON string when its value is
    a string; moto pastes the bare text, which is not JSON.

    EventBridge user guide, eb-transform-target-input.html ("Input transform examples"): the
    template `{"instance" : <instance>, "state": <state>}` gives
    `{"instance" : "i-0123456789", "state": "RUNNING"}`. `patch` as above.
    """
    import re

    from jsonpath_ng.ext import parse as json_path
    from moto.events.utils import EventTemplateParser

    original = EventTemplateParser.parse

    def parse(input_template: str, input_paths_map: dict[str, Any], event: Any) -> Any:
        if input_template and input_template.lstrip().startswith(("{", "[")):
            for name, path in (input_paths_map or {}).items():
                found = json_path(path).find(event)
                if found and isinstance(found[0].value, str):
                    input_template = re.sub(rf'(?<!")<{re.escape(name)}>(?!")',
                                            f'"<{name}>"', input_template)
        return original(input_template, input_paths_map, event)

    patch(EventTemplateParser, "parse", staticmethod(parse))


def job_queue_time_limit_actions() -> None:
    """Job queues keep jobStateTimeLimitActions (API_CreateJobQueue.html, API_JobQueueDetail.html).

    moto drops them on create and update, so every later plan would add them again.
    """
    from moto.batch.models import JobQueue
    from moto.batch.responses import BatchResponse

    actions: dict[str, list[dict[str, Any]]] = {}

    def keeping(original: Callable[[Any], str]) -> Callable[[Any], str]:
        def call(self: Any) -> str:
            result = original(self)
            given = self._get_param("jobStateTimeLimitActions")
            if given is not None:
                actions[json.loads(result)["jobQueueArn"]] = given
            return result
        return call

    describe = JobQueue.describe

    def describe_with_actions(self: Any) -> dict[str, Any]:
        return {**describe(self), "jobStateTimeLimitActions": actions.get(self.arn, [])}

    BatchResponse.createjobqueue = keeping(BatchResponse.createjobqueue)
    BatchResponse.updatejobqueue = keeping(BatchResponse.updatejobqueue)
    JobQueue.describe = describe_with_actions


def launch_template_data_tags() -> None:
    """A launch template's own tags are not part of its data (API_CreateLaunchTemplate.html).

    CreateLaunchTemplate's TagSpecifications "tag the launch template" (resource type
    launch-template); LaunchTemplateData's own TagSpecifications allow only instance, volume,
    network-interface and spot-instances-request (API_LaunchTemplateTagSpecificationRequest.html).
    moto copies the first into the second.
    """
    from moto.ec2.models.launch_templates import LaunchTemplateBackend

    original = LaunchTemplateBackend.create_launch_template

    def create(self: Any, name: str, description: str, template_data: dict[str, Any],
               *args: Any, **kwargs: Any) -> Any:
        specs = template_data.get("TagSpecifications")
        if specs is not None:
            template_data["TagSpecifications"] = [
                spec for spec in specs if spec.get("ResourceType") != "launch-template"]
        return original(self, name, description, template_data, *args, **kwargs)

    LaunchTemplateBackend.create_launch_template = create


def group_rule_descriptions() -> None:
    """A rule that references a group keeps its description (API_SecurityGroupRule.html).

    moto reads the description only from CIDR rules, so referencing rules lose it.
    """
    from moto.ec2.models.security_groups import SecurityGroupRule

    def description(self: Any) -> str | None:
        return self.ip_range.get("Description") or (self.source_group or {}).get("Description")

    SecurityGroupRule.description = property(description)


def jobs_wait_for_capacity() -> None:
    """A submitted job waits RUNNABLE: an emulated account never starts an instance for it.

    Batch's job states (batch/latest/userguide/job_states.html): RUNNABLE jobs wait for
    compute resources; CancelJob or TerminateJob of a job that has not started ends it FAILED
    with the given reason. moto's simple backend marks every job SUCCEEDED at once instead.
    """
    from moto.batch.models import Job
    from moto.batch.utils import JobStatus
    from moto.batch_simple.models import BatchSimpleBackend

    def queue(self: Any, include_start_attempt: bool, job: Any) -> None:
        self.backend._jobs[job.job_id] = job
        # SUBMITTED and PENDING pass in seconds on Batch; RUNNABLE is where it stays.
        job._transitions = []
        job.status = JobStatus.RUNNABLE

    terminate = Job.terminate

    def end_before_start(self: Any, reason: str) -> None:
        terminate(self, reason)
        if self._status in (JobStatus.SUBMITTED, JobStatus.PENDING, JobStatus.RUNNABLE):
            self._mark_stopped(success=False)

    BatchSimpleBackend._mark_job_as_finished = queue
    Job.terminate = end_before_start


def fsx_lustre_file_system() -> None:
    """DescribeFileSystems as FSx answers for a new Lustre file system (API_FileSystem.html).

    moto leaves out Lifecycle (the provider waits for AVAILABLE), FileSystemTypeVersion, OwnerId,
    VpcId, CreationTime, NetworkInterfaceIds, and LustreConfiguration's MountName (the name a
    client mounts, "fsx" or an 8-character name: API_LustreFileSystemConfiguration.html) and
    DataCompressionType ("NONE" unless asked); it echoes the request's LustreConfiguration.
    A file system is AVAILABLE at once here: the emulator has no servers to start. And an id
    that does not exist is FileSystemNotFound (API_DescribeFileSystems.html, Errors), where moto
    lists nothing: the provider waits on that error for a deleted file system.
    """
    import time
    import uuid

    from moto.ec2.models import ec2_backends
    from moto.fsx.exceptions import FileSystemNotFound
    from moto.fsx.models import FileSystem, FSxBackend

    create = FSxBackend.create_file_system
    described = FileSystem.to_dict
    describe = FSxBackend.describe_file_systems

    def describe_known(self: Any, file_system_ids: list[str] | None = None,
                       **kwargs: Any) -> Any:
        missing = [i for i in file_system_ids or [] if i not in self.file_systems]
        if missing:
            raise FileSystemNotFound(missing[0])
        return describe(self, file_system_ids=file_system_ids, **kwargs)

    def create_with_version(self: Any, *args: Any, **kwargs: Any) -> Any:
        file_system = create(self, *args, **kwargs)
        file_system.type_version = kwargs.get("file_system_type_version") or "2.15"
        file_system.mount_name = uuid.uuid4().hex[:8]
        file_system.created = time.time()
        return file_system

    def to_dict(self: Any) -> dict[str, Any]:
        found = described(self)
        subnets = ec2_backends[self.backend.account_id][self.backend.region_name].subnets
        vpc = next((s.vpc_id for zone in subnets.values() for sid, s in zone.items()
                    if sid in (self.subnet_ids or [])), None)
        found.update({"Lifecycle": "AVAILABLE", "OwnerId": self.backend.account_id,
                      "CreationTime": getattr(self, "created", time.time()),
                      "FileSystemTypeVersion": getattr(self, "type_version", "2.15"),
                      "NetworkInterfaceIds": [], **({"VpcId": vpc} if vpc else {})})
        if self.file_system_type == "LUSTRE":
            lustre = dict(self.lustre_configuration or {})
            lustre.setdefault("DataCompressionType", "NONE")
            lustre.setdefault("AutomaticBackupRetentionDays", 0)
            lustre.setdefault("CopyTagsToBackups", False)
            lustre["MountName"] = getattr(self, "mount_name", "fsx")
            found["LustreConfiguration"] = lustre
        return found

    FSxBackend.create_file_system = create_with_version
    FSxBackend.describe_file_systems = describe_known
    FileSystem.to_dict = to_dict


def lambda_dead_letter_config() -> None:
    """A function keeps the DeadLetterConfig it was created or updated with and returns it.

    CreateFunction and UpdateFunctionConfiguration take DeadLetterConfig, and the function's
    configuration returns it (lambda/latest/api/API_FunctionConfiguration.html,
    DeadLetterConfig: "The function's dead letter queue"). moto drops it, so every plan would
    add it again.
    """
    from moto.awslambda.models import LambdaFunction

    init, update = LambdaFunction.__init__, LambdaFunction.update_configuration
    configuration = LambdaFunction.get_configuration

    def create(self: Any, account_id: str, spec: dict[str, Any], *args: Any,
               **kwargs: Any) -> None:
        init(self, account_id, spec, *args, **kwargs)
        self.dead_letter_config = spec.get("DeadLetterConfig")

    def updated(self: Any, config_updates: dict[str, Any]) -> dict[str, Any]:
        if "DeadLetterConfig" in config_updates:
            # An empty TargetArn removes the queue (the AWS provider sends that on removal).
            self.dead_letter_config = config_updates["DeadLetterConfig"]
        return update(self, config_updates)

    def described(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config = configuration(self, *args, **kwargs)
        if (getattr(self, "dead_letter_config", None) or {}).get("TargetArn"):
            config["DeadLetterConfig"] = self.dead_letter_config
        return config

    LambdaFunction.__init__ = create
    LambdaFunction.update_configuration = updated
    LambdaFunction.get_configuration = described


FIXES: tuple[Callable[[], None], ...] = (
    batch_compute_environment_defaults, job_definition_node_properties,
    job_queue_time_limit_actions, launch_template_data_tags, group_rule_descriptions,
    jobs_wait_for_capacity, input_template_quotes_strings, fsx_lustre_file_system,
    lambda_dead_letter_config)


def apply_all() -> None:
    """Apply every fix to moto's classes in this process."""
    for fix in FIXES:
        fix()
