"""Typed configuration of the platform: synth-time settings, fixed literals and naming helpers."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from launcher import contract
from launcher.inputs import known_region, whole_number

STACK_NAME = "mnp-batch"
EFS_THROUGHPUT_MODES = ("bursting", "provisioned", "elastic")
# The strictest name built from it is the ECR repository '<cluster>-solver': ECR's
# RepositoryName pattern [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* (botocore ecr model) forbids a
# leading or trailing '-' and capitals. IAM role and EventBridge rule names allow 64
# characters; with the longest suffix ('-job-execution') 32 stays well inside.
CLUSTER_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$"
# Security group names '<cluster>-compute' etc.: EC2 CreateSecurityGroup's GroupName "Cannot
# start with sg-" (AWSEC2/latest/APIReference/API_CreateSecurityGroup.html). A separate test:
# Terraform's RE2 regex() has no negative lookahead.
CLUSTER_NAME_FORBIDDEN_PREFIX = "sg-"
CLUSTER_NAME_RULE = ("1-32 lowercase letters, digits or hyphens, starting and ending with a "
                     f"letter or digit, not starting with '{CLUSTER_NAME_FORBIDDEN_PREFIX}'")
# A multi-node job has at most 1,000 nodes (Batch) and the largest EC2 instance 896 vCPUs
# (u7in-32tb.224xlarge): more vCPUs than that no job of this queue can use. (The API field
# is an Integer; 1e26 would be sent as a float.)
MAX_VCPUS_LIMIT = 1000 * 896
INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$"
IMAGE_TAG_PATTERN = f"^{contract.IMAGE_TAG_PATTERN}$"  # anchored for Terraform's regex()
EFS_THROUGHPUT_MIN, EFS_THROUGHPUT_MAX = 1, 3414
# PERSISTENT_2 SSD: "1200 GiB, 2400 GiB, and increments of 2400 GiB" (StorageCapacity) and
# "125, 250, 500, 1000 MB/s/TiB" (PerUnitStorageThroughput), FSx API reference,
# docs.aws.amazon.com/fsx/latest/APIReference/API_CreateFileSystem.html and
# API_CreateFileSystemLustreConfiguration.html.
FSX_SMALLEST_GIB, FSX_CAPACITY_STEP_GIB = 1200, 2400
FSX_THROUGHPUTS = (125, 250, 500, 1000)
FSX_CAPACITY_RULE = (f"{FSX_SMALLEST_GIB} or a multiple of {FSX_CAPACITY_STEP_GIB} GiB "
                     "(FSx for Lustre PERSISTENT_2 SSD)")


def fsx_capacity_allowed(gib: int) -> bool:
    """Whether FSx accepts `gib` as a PERSISTENT_2 SSD file system's storage capacity."""
    return gib == FSX_SMALLEST_GIB or (gib > 0 and gib % FSX_CAPACITY_STEP_GIB == 0)
VPC_PREFIX_MIN, VPC_PREFIX_MAX = 16, 20
# S3 bucket naming rules: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
S3_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# Same page: no '..', no IP-address form, and these prefixes and suffixes are reserved.
S3_BUCKET_RESERVED = (("xn--", "sthree-", "amzn-s3-demo-"),
                      ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"))
# A data prefix: one or more folders, each ending in '/', of S3's "safe characters" for keys
# (docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html) without '*': IAM reads '*'
# and '?' in a resource ARN as wildcards, so the staging role's grants stay on these folders.
S3_PREFIX_PATTERN = r"^([A-Za-z0-9!_.'()-]+/)+$"
S3_PREFIX_RULE = ("one or more folders of letters, digits and !_.'()- each ending in '/', "
                  "like input/ or projects/cfd/in/")
STATE_OPTIONS = ("STATE_KEY", "STATE_REGION")  # only meaningful with STATE_BUCKET
# The rendezvous key is written through an ephemeral resource and a write-only argument
# (Terraform 1.11); older versions stop on parser errors that do not say why.
TERRAFORM_REQUIRED_VERSION = ">= 1.11"
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")  # the SDKs' order
SWITCH_VALUES = {"true": True, "1": True, "yes": True, "on": True,
                 "false": False, "0": False, "no": False, "off": False}


class ConfigError(ValueError):
    """A synth-time setting has a value that is not allowed."""


def s3_bucket_name(name: str) -> bool:
    """Whether S3 accepts `name` for a general purpose bucket (S3_BUCKET_PATTERN's page)."""
    prefixes, suffixes = S3_BUCKET_RESERVED
    return bool(re.fullmatch(S3_BUCKET_PATTERN, name)) and ".." not in name \
        and not re.fullmatch(r"[0-9]+(\.[0-9]+){3}", name) \
        and not name.startswith(prefixes) and not name.endswith(suffixes)


@dataclass(frozen=True)
class StackSettings:
    """Defaults of the Terraform variables, taken from the environment at synth time."""

    region: str = "us-east-1"  # provider region: as the AWS SDK finds it (sdk_region)
    region_source: str = field(default="default", compare=False)  # where region came from
    cluster_name: str = "mnp-hpc"  # prefix of every resource name (CLUSTER_NAME)
    vpc_cidr: str = "10.42.0.0/16"  # VPC address range, /16-/20
    instance_types: tuple[str, ...] = ("c6i.2xlarge",)  # one type per job: MNP nodes match
    # Failover types, in order: each its own environment and queue (stacks/fallback.py)
    fallback_instance_types: tuple[str, ...] = ()
    max_vcpus: int = 64  # compute environment ceiling: 8 nodes of 8 vCPUs
    efs_throughput_mode: str = "elastic"  # bursting | provisioned | elastic
    efs_provisioned_throughput: int = 64  # MiB/s, used only in provisioned mode
    enable_efa: bool = False  # EFA interfaces, devices and settings (ENABLE_EFA); off: TCP
    enable_compliance: bool = False  # CloudTrail and AWS Config rules (ENABLE_COMPLIANCE)
    enable_fsx: bool = False  # FSx for Lustre linked to the data bucket, mounted on nodes
    fsx_storage_capacity_gib: int = FSX_SMALLEST_GIB  # the smallest PERSISTENT_2 size
    fsx_throughput_per_unit: int = FSX_THROUGHPUTS[0]  # MB/s per TiB; the cheapest tier

    def __post_init__(self) -> None:
        _check_pattern("CLUSTER_NAME", self.cluster_name, CLUSTER_NAME_PATTERN,
                       CLUSTER_NAME_RULE)
        if self.cluster_name.startswith(CLUSTER_NAME_FORBIDDEN_PREFIX):
            raise ConfigError(f"CLUSTER_NAME={self.cluster_name!r} is not allowed: "
                              f"{CLUSTER_NAME_RULE}")
        _check_cidr("vpc_cidr", self.vpc_cidr)
        if not self.instance_types:
            raise ConfigError("INSTANCE_TYPES is empty: give one or more instance types, "
                              "comma separated, e.g. c6i.2xlarge")
        for var, types in (("INSTANCE_TYPES", self.instance_types),
                           ("FALLBACK_INSTANCE_TYPES", self.fallback_instance_types)):
            for itype in types:
                _check_pattern(var, itype, INSTANCE_TYPE_PATTERN,
                               "EC2 instance types like c6i.2xlarge, comma separated")
        if len(set(self.fallback_instance_types)) != len(self.fallback_instance_types):
            raise ConfigError(f"FALLBACK_INSTANCE_TYPES={','.join(self.fallback_instance_types)!r}"
                              " is not allowed: each type at most once")
        if not 1 <= self.max_vcpus <= MAX_VCPUS_LIMIT:
            raise ConfigError(f"MAX_VCPUS={self.max_vcpus!r} is not allowed: "
                              f"a whole number from 1 to {MAX_VCPUS_LIMIT}")
        if self.efs_throughput_mode not in EFS_THROUGHPUT_MODES:
            raise ConfigError(f"EFS_THROUGHPUT_MODE={self.efs_throughput_mode!r} is not "
                              f"allowed: one of {', '.join(EFS_THROUGHPUT_MODES)}")
        if not EFS_THROUGHPUT_MIN <= self.efs_provisioned_throughput <= EFS_THROUGHPUT_MAX:
            raise ConfigError(
                f"EFS_PROVISIONED_THROUGHPUT={self.efs_provisioned_throughput!r} is not allowed: "
                f"a whole number of MiB/s from {EFS_THROUGHPUT_MIN} to {EFS_THROUGHPUT_MAX}")
        if not fsx_capacity_allowed(self.fsx_storage_capacity_gib):
            raise ConfigError(f"fsx_storage_capacity_gib={self.fsx_storage_capacity_gib!r} is "
                              f"not allowed: {FSX_CAPACITY_RULE}")
        if self.fsx_throughput_per_unit not in FSX_THROUGHPUTS:
            raise ConfigError(f"fsx_throughput_per_unit={self.fsx_throughput_per_unit!r} is not "
                              f"allowed: one of {', '.join(map(str, FSX_THROUGHPUTS))} MB/s/TiB")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackSettings:
        """Read the synth-time defaults from environment variables, validating each."""
        env = os.environ if environ is None else environ
        base = cls()
        kwargs: dict[str, object] = {}
        if "CLUSTER_NAME" in env:
            kwargs["cluster_name"] = env["CLUSTER_NAME"]
        for var in ("INSTANCE_TYPES", "FALLBACK_INSTANCE_TYPES"):
            if var in env:
                kwargs[var.lower()] = tuple(t.strip() for t in env[var].split(",") if t.strip())
        if "MAX_VCPUS" in env:
            kwargs["max_vcpus"] = _whole_number("MAX_VCPUS", env["MAX_VCPUS"],
                                                f"a whole number from 1 to {MAX_VCPUS_LIMIT}")
        if "EFS_THROUGHPUT_MODE" in env:
            kwargs["efs_throughput_mode"] = env["EFS_THROUGHPUT_MODE"]
        if "EFS_PROVISIONED_THROUGHPUT" in env:
            kwargs["efs_provisioned_throughput"] = _whole_number(
                "EFS_PROVISIONED_THROUGHPUT", env["EFS_PROVISIONED_THROUGHPUT"],
                f"a whole number of MiB/s from {EFS_THROUGHPUT_MIN} to {EFS_THROUGHPUT_MAX}")
        if "ENABLE_EFA" in env:
            kwargs["enable_efa"] = _switch("ENABLE_EFA", env["ENABLE_EFA"])
        if "ENABLE_COMPLIANCE" in env:
            kwargs["enable_compliance"] = _switch("ENABLE_COMPLIANCE", env["ENABLE_COMPLIANCE"])
        if "ENABLE_FSX" in env:
            kwargs["enable_fsx"] = _switch("ENABLE_FSX", env["ENABLE_FSX"])
        settings = cls(**{**base.__dict__, **kwargs})  # every other value checked first
        found = sdk_region(env)
        if found is None:
            raise ConfigError(f"no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or a "
                              f"region in the profile {_profile(env)!r} of {_config_file(env)}")
        return cls(**{**settings.__dict__, "region": found[0], "region_source": found[1]})


def sdk_region(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(region, where it came from) as the AWS SDKs and CLI look: env, then profile; else None."""
    # The jobs CLI's boto3 looks the same way, so both talk to one region
    # (docs.aws.amazon.com/sdkref/latest/guide/feature-region.html).
    for var in REGION_ENV:
        if var in env:  # set but empty is a mistake, not "look further"
            return _region(var, env[var]), var
    from botocore.configloader import load_config
    from botocore.exceptions import BotoCoreError

    path, profile = _config_file(env), _profile(env)
    try:
        profiles = load_config(path)["profiles"] if os.path.isfile(path) else {}
    except BotoCoreError as err:
        raise ConfigError(f"AWS config file {path} cannot be read: {err}") from None
    region = profiles.get(profile, {}).get("region")
    if region is None:
        return None
    source = f"profile {profile!r} in {path}"
    return _region(f"region of {source}", region), source


def _config_file(env: Mapping[str, str]) -> str:
    return os.path.expanduser(env.get("AWS_CONFIG_FILE") or "~/.aws/config")


def _profile(env: Mapping[str, str]) -> str:
    return env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"


@dataclass(frozen=True)
class NodeDefaults:
    """What each node of the multi-node job gets unless a submit overrides it."""

    vcpus: int = 8  # VCPU resource requirement; also MPI ranks per node
    memory_mib: int = 14336  # fits a 16 GiB instance after the ECS agent's reservation
    num_nodes: int = 2  # default node count; nodeOverrides.numNodes changes it per job
    shared_memory_mib: int = 4096  # /dev/shm for Open MPI's shared-memory transport
    rendezvous_timeout_s: int = 600  # MNP_RENDEZVOUS_TIMEOUT: wait for all nodes
    attempts: int = 3  # retry strategy attempts (1-10)
    attempt_timeout_s: int = 86400  # a hung job is stopped after a day
    command: tuple[str, ...] = ("python", "-m", "solver", "heat", "--nx", "1025", "--ny", "1025",
                                "--steps", "500")
    efs_mount_path: str = contract.EFS_MOUNT_PATH  # where every container sees the shared FS
    fsx_mount_path: str = contract.FSX_MOUNT_PATH  # host and container path of the Lustre mount
    user: str = "1000:1000"  # the image's non-root user, matching the EFS access point


@dataclass(frozen=True)
class PlatformLimits:
    """Fixed operational choices: retention, thresholds, sizes."""

    log_retention_days: int = 365  # job output, kept a year for audits of published results
    flow_log_retention_days: int = 365
    ecr_keep_images: int = 20  # lifecycle: untagged and old images beyond this expire
    root_volume_gib: int = 50  # gp3, encrypted
    runnable_cancel_after_s: int = 3600  # jobStateTimeLimitActions: stuck RUNNABLE -> CANCEL
    # Alarm when RUNNABLE -> STARTING takes longer. Seconds here; AWS/Batch durations are in
    # milliseconds, and monitoring.py converts in one place.
    runnable_alarm_threshold_s: int = 1800
    efs_data_root: str = "/data"  # access point root; created owned by uid/gid 1000
    posix_uid: int = 1000
    posix_gid: int = 1000
    kms_deletion_window_days: int = 7
    secret_recovery_window_days: int = 7  # Secrets Manager's minimum: 7-30 days
    rendezvous_secret_length: int = 64  # characters of the per-stack rendezvous key


@dataclass(frozen=True)
class ControllerDefaults:
    """The continuation controller's function (stacks/continuation.py, continuation/README.md)."""

    package: str = "continuation"  # zipped with the project modules it imports
    handler: str = "continuation.handler.lambda_handler"  # events and the sweep alike
    # Supported until 2029-06-30 (docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html);
    # also in the AWS provider 5.100's runtime list, unlike python3.14.
    runtime: str = "python3.13"
    memory_mib: int = 128  # a few Batch calls per decision
    timeout_s: int = 120  # a sweep describes every managed RUNNABLE or recently FAILED job
    sweep_schedule: str = "rate(5 minutes)"  # the deadline clock and the net for lost events
    dead_letter_retention_s: int = 14 * 86400  # SQS's longest: time to read what failed
class StagingDefaults:
    """The data bucket's folders and the single-node staging jobs (docs/CONTRACTS.md)."""

    input_prefix: str = "input/"  # default of data_input_prefix: stage-in reads below it
    output_prefix: str = "output/"  # default of data_output_prefix: stage-out writes below it
    vcpus: int = 2  # Fargate task size: 2 vCPU with 4 GiB is a valid Fargate pair
    memory_mib: int = 4096
    max_vcpus: int = 16  # Fargate environment ceiling: 8 staging jobs at once
    attempts: int = 3  # retry strategy: exit 1 (an S3 or file-system error) is retried
    attempt_timeout_s: int = 6 * 3600  # a staging copy that hangs is stopped after 6 h


@dataclass(frozen=True)
class RemoteState:
    """Terraform state in S3 (STATE_BUCKET switches it on); without it state stays local."""

    bucket: str  # existing, versioned bucket (STATE_BUCKET)
    key: str  # object key of this stack's state (STATE_KEY)
    region: str  # the bucket's region (STATE_REGION, default: the stack's region)

    def __post_init__(self) -> None:
        if not s3_bucket_name(self.bucket):
            raise ConfigError(f"STATE_BUCKET={self.bucket!r} is not allowed: an S3 bucket name, "
                              "3-63 lowercase letters, digits, dots or hyphens, not an IP "
                              f"address, not starting {'/'.join(S3_BUCKET_RESERVED[0])} nor "
                              f"ending {'/'.join(S3_BUCKET_RESERVED[1])}")
        if (not self.key or self.key.startswith("/") or self.key.endswith("/")
                or len(self.key) > 1024):
            raise ConfigError(f"STATE_KEY={self.key!r} is not allowed: an S3 object key like "
                              "mnp-batch/mnp-hpc/terraform.tfstate, not starting or ending with /")
        _region("STATE_REGION", self.region)

    @classmethod
    def from_env(cls, env: Mapping[str, str], settings: StackSettings) -> RemoteState | None:
        """The S3 backend when STATE_BUCKET is set; half-given settings are refused."""
        bucket = env.get("STATE_BUCKET", "").strip()
        if not bucket:
            given = [var for var in STATE_OPTIONS if env.get(var, "").strip()]
            if given:
                raise ConfigError(
                    f"{given[0]}={env[given[0]]!r} is set but STATE_BUCKET is not: set "
                    f"STATE_BUCKET for state in S3, or unset {' and '.join(given)} for local state")
            return None
        key = (env.get("STATE_KEY", "").strip()
               or f"{STACK_NAME}/{settings.cluster_name}/terraform.tfstate")
        region = env.get("STATE_REGION", "").strip() or settings.region
        return cls(bucket=bucket, key=key, region=region)


@dataclass(frozen=True)
class PlatformConfig:
    """Everything the stack needs to build: env-var defaults plus fixed literals."""

    settings: StackSettings = field(default_factory=StackSettings)
    node: NodeDefaults = field(default_factory=NodeDefaults)
    limits: PlatformLimits = field(default_factory=PlatformLimits)
    controller: ControllerDefaults = field(default_factory=ControllerDefaults)
    staging: StagingDefaults = field(default_factory=StagingDefaults)
    state: RemoteState | None = None  # None: local state file beside the project
    stack_name: str = STACK_NAME

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PlatformConfig:
        """Build the config with variable defaults and the state backend from the environment."""
        env = os.environ if environ is None else environ
        settings = StackSettings.from_env(env)
        return cls(settings=settings, state=RemoteState.from_env(env, settings))


def name(cluster: str, *parts: str) -> str:
    """One naming scheme for every resource: '<cluster>-<part>-...'."""
    return "-".join((cluster, *parts))


def tags(cluster: str, **extra: str) -> dict[str, str]:
    """Base tags merged with per-resource extras."""
    return {"Project": "mnp-batch", "Cluster": cluster, "ManagedBy": "cdktf", **extra}


def _check_pattern(var: str, value: str, pattern: str, allowed: str) -> None:
    if not re.fullmatch(pattern, value):
        raise ConfigError(f"{var}={value!r} is not allowed: {allowed}")


def _check_cidr(var: str, value: str) -> None:
    allowed = (f"an IPv4 network like 10.42.0.0/16 with a prefix from /{VPC_PREFIX_MIN} "
               f"to /{VPC_PREFIX_MAX}")
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as err:
        raise ConfigError(f"{var}={value!r} is not allowed: {allowed}") from err
    if not VPC_PREFIX_MIN <= net.prefixlen <= VPC_PREFIX_MAX:
        raise ConfigError(f"{var}={value!r} is not allowed: {allowed}")


def _whole_number(var: str, raw: str, allowed: str) -> int:
    try:
        return whole_number(raw)
    except ValueError as err:
        raise ConfigError(f"{var}={raw!r} is not allowed: {allowed}") from err


def _switch(var: str, raw: str) -> bool:
    try:
        return SWITCH_VALUES[raw.strip().lower()]
    except KeyError as err:
        raise ConfigError(f"{var}={raw!r} is not allowed: true or false "
                          "(also 1/0, yes/no, on/off)") from err


def _region(var: str, raw: str) -> str:
    try:
        return known_region(raw)
    except ValueError as err:
        raise ConfigError(f"{var}={raw!r} is not allowed: {err}") from None
