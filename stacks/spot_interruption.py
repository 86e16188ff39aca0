"""What a Spot instance does with EC2's two-minute interruption notice: its ecs.config lines,
the watcher that turns the notice into SIGTERM, and the launcher's grace that follows them.

launcher/README.md ("A Spot interruption on ECS") says why the stack must do this itself:
draining alone sends no signal to a running Batch job.
"""

from __future__ import annotations

from pathlib import Path

WATCHER = Path(__file__).with_name("spot_watcher.sh")
WATCHER_PATH = "/usr/local/sbin/mnp-spot-watcher"
WATCHER_UNIT = "mnp-spot-watcher.service"

# "a warning that is issued two minutes before Amazon EC2 stops or terminates your Spot
# Instance" (docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html).
NOTICE_S = 120
# The watcher's check interval, the page's recommended 5 s: the notice is seen this late at most.
POLL_S = 5
# Left after the stop timeout for the container to exit, its log lines to reach CloudWatch and
# the instance to begin shutting down before the two minutes are up.
EXIT_MARGIN_S = 25
# The ECS agent's SIGTERM-to-SIGKILL wait (`docker stop` of a StopTask): 120 - 5 - 25 = 90 s,
# so a stop that starts when the watcher acts still ends before the instance does.
STOP_TIMEOUT_S = NOTICE_S - POLL_S - EXIT_MARGIN_S
# The launcher kills ranks still running this long after SIGTERM (MNP_TERM_GRACE): 10 s
# before the agent's SIGKILL, so the launcher itself still logs and exits with 143.
TERM_GRACE_S = STOP_TIMEOUT_S - 10

# ecs.config lines of Spot instances only (docs.aws.amazon.com/AmazonECS/latest/
# developerguide/ecs-agent-config.html): ECS_CONTAINER_STOP_TIMEOUT is the wait before SIGKILL
# (default 30s); ECS_ENABLE_SPOT_INSTANCE_DRAINING=true sets the instance DRAINING on the
# notice, so no new job is placed on it.
ECS_CONFIG = (f"ECS_CONTAINER_STOP_TIMEOUT={STOP_TIMEOUT_S}s",
              "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true")

UNIT = f"""[Unit]
Description=SIGTERM to Batch job containers on a Spot interruption notice
After=docker.service

[Service]
ExecStart={WATCHER_PATH}
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""


def _heredoc(path: str, text: str, mode: str) -> str:
    """Shell writing `text` to `path` verbatim (a quoted heredoc: no expansion)."""
    marker = "MNP_EOF"
    if any(line == marker for line in text.splitlines()):
        raise ValueError(f"{path}: a line of its text is the heredoc marker {marker}")
    return f"cat > {path} <<'{marker}'\n{text}{marker}\nchmod {mode} {path}\n"


def watcher_script() -> str:
    """The user-data part that installs the watcher and starts it as a systemd unit."""
    # --no-block: user data runs inside cloud-final, which units ordered after it wait for.
    return ("#!/bin/bash\n" + _heredoc(WATCHER_PATH, WATCHER.read_text(), "0755")
            + _heredoc(f"/etc/systemd/system/{WATCHER_UNIT}", UNIT, "0644")
            + "systemctl daemon-reload\n"
            + f"systemctl enable --now --no-block {WATCHER_UNIT}\n")
