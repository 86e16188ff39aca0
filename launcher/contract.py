"""The facts of docs/CONTRACTS.md that several parts share: exit codes and the Batch
retry rules that follow from them, the environment names, the EFS mount path, the image-tag rule.

One source for the solver, the launcher, the jobs CLI (a submit-time retryStrategy replaces
the job definition's), the emulators and the stack's job definition.
"""

from __future__ import annotations

OK = 0
APPLICATION_ERROR = 1  # anything unexpected: Batch does not retry it
USAGE = 2  # bad input: nothing was started, nothing written
RENDEZVOUS_TIMEOUT = 3  # a node never reported
NODE_LOST = 4  # the main node or a rank went away mid-run; a retry resumes from checkpoint
STOPPED = 143  # SIGTERM after a checkpoint was written

RETRYABLE = (RENDEZVOUS_TIMEOUT, NODE_LOST, STOPPED)
# What each code means to a user (mnp-launch --help); "other" is the program's own code.
EXIT_MEANINGS: dict[int | str, str] = {
    OK: "success",
    USAGE: "bad input or usage: nothing was started (not retried)",
    RENDEZVOUS_TIMEOUT: "rendezvous timeout: a node never reported (retried)",
    NODE_LOST: "a node was lost mid-run or is unusable (retried, resumes from checkpoint)",
    STOPPED: "stopped by SIGTERM after a checkpoint (retried)",
    "other": "the program's own exit code; 1 also for a launcher failure (not retried)",
}

# Batch's evaluateOnExit, first match wins (at most 5 rules). Batch retries a job no rule
# matches, so the last rule catches everything else.
# Batch's statusReason when the instance under a job went away, e.g. "Host EC2 (instance
# i-0abc) terminated." (Batch user guide, "Automated job retries", retries on "Host EC2*");
# a glob, as evaluateOnExit takes it.
HOST_FAILURE_REASON = "Host EC2*"
EVALUATE_ON_EXIT: tuple[dict[str, str], ...] = (
    {"onStatusReason": HOST_FAILURE_REASON, "action": "RETRY"},
    *({"onExitCode": str(code), "action": "RETRY"} for code in RETRYABLE),
    {"onReason": "*", "action": "EXIT"},
)

# Queue reasons after which a RUNNABLE job can never start on its own (the statusReason of
# DescribeJobs, Batch API reference JobDetail; user guide "Jobs stuck in a RUNNABLE status"):
# the stack's jobStateTimeLimitActions cancel on them, the continuation controller moves or
# shrinks the job.
STUCK_RUNNABLE_REASONS = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
)

# Environment variables that more than one part sets or reads.
RANKS_PER_NODE_ENV = "MNP_RANKS_PER_NODE"  # job definition (its VCPU), CLI override -> launcher
RENDEZVOUS_TIMEOUT_ENV = "MNP_RENDEZVOUS_TIMEOUT"  # job definition -> launcher
RENDEZVOUS_SECRET_ENV = "MNP_RENDEZVOUS_SECRET"  # job definition's secrets -> launcher only
CHECKPOINT_KEY_ENV = "MNP_CHECKPOINT_KEY"  # launcher (one key per job) -> solver's checkpoints
RUN_AS_ENV = "MNP_RUN_AS"  # job definition (its user is root) -> launcher: the ranks' UID:GID
NETWORK_ENV = "MNP_NETWORK"  # job definition (tcp, or efa on an EFA stack) -> launcher
PRECHECK_ENV = "MNP_PRECHECK"  # job definition (1 on an EFA stack, else 0) -> launcher's gate
TERM_GRACE_ENV = "MNP_TERM_GRACE"  # Spot job definition (below its stop timeout) -> launcher
INPUT_PATH_ENV = "INPUT_PATH"  # CLI -> solver (default of --input-path)
GANG_ENV = "MNP_GANG"  # CLI (submit --spot-gang) -> launcher; the controller reads it too
OUTPUT_PATH_ENV = "OUTPUT_PATH"  # job definition, CLI -> solver (default of --output-path)

# No node offers more: the largest EC2 instance, u7in-32tb.224xlarge, has 896 vCPUs
# (EC2 instance types: memory optimized, High Memory U7in).
MAX_VCPUS_PER_NODE = 896

EFS_MOUNT_PATH = "/mnt/efs"  # where every node's container sees the shared file system
# Where an FSx for Lustre stack mounts Lustre on every instance, and every container sees it.
FSX_MOUNT_PATH = "/fsx"
# An image tag as ECR accepts it (match whole values: no anchors here).
IMAGE_TAG_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"

# Staging (docs/CONTRACTS.md, "Data in and out"): the job parameters `submit --stage-out` sets
# on the multi-node job, which the stack's EventBridge rule passes on to the stage-out job.
STAGE_OUT_PARAMETER = "stageOut"  # s3://BUCKET/PREFIX/: where the outputs go
OUTPUT_DIR_PARAMETER = "outputDir"  # the run's --output-path (the parent of <job id>/)
# ...and the two the rule adds from the event, for the stage-out job's command (Ref::).
JOB_ID_PARAMETER = "jobId"
STATUS_PARAMETER = "status"
