"""The apply round trip's cost: synth, apply, second plan and destroy of the default stack.

The real terraform CLI and AWS provider against the AWS emulator on loopback (tests/deploy).
What a real account adds (Batch, NAT gateway and EFS creation waits) is not in these figures.
"""

from __future__ import annotations

import shutil

from bench.common import BenchError, Options, Row, Section

STAGES = ("synth", "init", "apply", "second plan", "destroy")


def measure(opts: Options) -> Section:
    """One round trip of the default variant; each stage's seconds."""
    sec = Section("deploy", "Apply round trip (AWS emulator)")
    if shutil.which("terraform") is None:
        sec.skipped = "no terraform CLI on PATH"
        return sec
    from tests.deploy import scenario

    with open(opts.work / "deploy.log", "w") as log:
        outcome = scenario.run(scenario.VARIANTS[0], opts.work / "deploy", log=log)
    failed = {stage: step.code for stage, step in outcome.steps.items() if step.code != 0}
    if failed or outcome.errors:
        tail = (opts.work / "deploy.log").read_text()[-2000:]
        raise BenchError(f"round trip failed: {failed or outcome.errors}: {tail}")
    for stage in STAGES:
        sec.rows.append(Row(f"round trip: {stage}", outcome.seconds[stage], "s",
                            f"{len(outcome.in_state)} resources" if stage == "apply" else ""))
    sec.data = {"stage_seconds": outcome.seconds, "resources": len(outcome.in_state)}
    sec.notes.append(
        "Stages as `make e2e` runs them, in one fresh emulated account: synth is `python "
        "main.py` (provider bindings load), apply and destroy include the AWS provider's own "
        "polling for Batch, EFS, NAT gateway and endpoint states, which answer at once here. "
        "A real account takes longer: AWS creates those for minutes.")
    return sec
