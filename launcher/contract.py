"""Exit codes of ../shared/CONTRACTS.md and the Batch retry rules that follow from them.

One source for the solver, the launcher, the jobs CLI (a submit-time retryStrategy replaces
the job definition's) and the stack's job definition.
"""

from __future__ import annotations

OK = 0
APPLICATION_ERROR = 1  # anything unexpected: Batch does not retry it
USAGE = 2  # bad input: nothing was started, nothing written
RENDEZVOUS_TIMEOUT = 3  # a node never reported
NODE_LOST = 4  # the main node or a rank went away mid-run; a retry resumes from checkpoint
STOPPED = 143  # SIGTERM after a checkpoint was written

RETRYABLE = (RENDEZVOUS_TIMEOUT, NODE_LOST, STOPPED)

# Batch's evaluateOnExit, first match wins (at most 5 rules). Batch retries a job no rule
# matches, so the last rule catches everything else.
EVALUATE_ON_EXIT: tuple[dict[str, str], ...] = (
    {"onStatusReason": "Host EC2*", "action": "RETRY"},
    *({"onExitCode": str(code), "action": "RETRY"} for code in RETRYABLE),
    {"onReason": "*", "action": "EXIT"},
)
