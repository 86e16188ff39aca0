"""`submit --spot-gang`: the array job launcher/README.md "Spot gangs" asks for, priced at the
current Spot price, and the flags that cannot make a gang refused with exit 2."""

from __future__ import annotations

import json

import pytest

from jobs.spotgang import GANG_COST_CAP_ENV, GANG_PRICE_ENV, GANG_TIMEOUT_ENV
from launcher.contract import GANG_ENV
from tests.jobs.moto_env import INSTANCE_TYPE, SPOT_DEFINITION, SPOT_QUEUE

GANG = ["submit", "--job-name", "gang-heat", "--nodes", "4", "--spot-gang", "--no-preflight"]


def current_spot_price(aws) -> float:
    """What EC2 (here moto, which answers one price per zone) says the type costs now."""
    history = aws.ec2.describe_spot_price_history(InstanceTypes=[INSTANCE_TYPE])
    return max(float(e["SpotPrice"]) for e in history["SpotPriceHistory"])


def test_gang_is_one_array_job_of_whole_spot_instances_without_retries(aws):
    aws.write_outputs()
    result = aws.cli(*GANG, "--gang-timeout", "300", "--gang-cost-cap", "2.5", "--json",
                     "--", "python", "-m", "solver", "heat")
    assert result.returncode == 0, result.stderr
    (submit,) = [r.body for r in aws.requests() if r.operation == "submitjob"]
    # Array index = node index (launcher/README.md "Spot gangs"); arrays run on Spot queues.
    assert submit["arrayProperties"] == {"size": 4}
    assert (submit["jobQueue"], submit["jobDefinition"]) == (SPOT_QUEUE, SPOT_DEFINITION)
    # "Submit a gang without Batch retries" (launcher/README.md "Spot gangs", Retries).
    assert submit["retryStrategy"] == {"attempts": 1}
    # The controller's role may cancel only arrays with this tag (stacks/continuation.py).
    assert submit["tags"]["mnp:gang"] == "4"
    container = submit["containerOverrides"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env[GANG_ENV] == "1"
    assert env[GANG_TIMEOUT_ENV] == "300"
    assert env[GANG_COST_CAP_ENV] == "2.5"
    assert float(env[GANG_PRICE_ENV]) == current_spot_price(aws)
    # One member per instance: the type's every vCPU (c6i.2xlarge: 8).
    assert {"type": "VCPU", "value": "8"} in container["resourceRequirements"]
    assert container["command"] == ["python", "-m", "solver", "heat"]
    out = json.loads(result.stdout)
    assert out["gang"] == {"size": 4, "instanceType": INSTANCE_TYPE,
                           "pricePerNodeHour": current_spot_price(aws), "queue": SPOT_QUEUE}
    described = aws.batch.describe_jobs(jobs=[out["jobId"]])["jobs"][0]
    assert described["arrayProperties"]["size"] == 4


def test_gang_with_min_nodes_is_the_first_member_of_a_run(aws):
    aws.write_outputs()
    result = aws.cli(*GANG, "--min-nodes", "2", "--max-generations", "3",
                     "--output-path", "/mnt/efs/runs", "--json",
                     "--", "python", "-m", "solver", "heat")
    assert result.returncode == 0, result.stderr
    (submit,) = [r.body for r in aws.requests() if r.operation == "submitjob"]
    # The run's settings, as for a multi-node run (continuation/README.md, "How members are
    # linked"), beside the gang's own tag.
    assert {k: submit["tags"][k] for k in ("mnp:min-nodes", "mnp:max-generations", "mnp:gang")} \
        == {"mnp:min-nodes": "2", "mnp:max-generations": "3", "mnp:gang": "4"}
    out = json.loads(result.stdout)
    # The launcher writes under the parent's id (launcher/README.md "Spot gangs"), so that is
    # the run's checkpoint directory, tagged once Batch gave the id.
    checkpoints = f"/mnt/efs/runs/{out['jobId']}/checkpoints"
    assert out["family"]["checkpointDir"] == checkpoints
    tags = aws.batch.describe_jobs(jobs=[out["jobId"]])["jobs"][0]["tags"]
    assert tags["mnp:checkpoint"] == checkpoints


def test_gang_refused_when_the_stack_has_no_spot_queue(aws):
    aws.write_outputs(spot_job_queue_name="", spot_job_definition_name="")
    result = aws.cli(*GANG)
    assert result.returncode == 2
    assert "no Spot job queue name" in result.stderr
    assert "submitjob" not in [r.operation for r in aws.requests()]


@pytest.mark.parametrize(("extra", "message"), [
    (["--nodes", "1"], "--spot-gang --nodes 1 is out of range: a gang is an array job of "
     "2..1000 members"),
    (["--vcpus", "4"], "--spot-gang: drop --vcpus (a member is one whole Spot instance)"),
    (["--attempts", "2"], "--spot-gang --attempts 2: a gang runs without Batch retries"),
    (["--min-nodes", "1", "--output-path", "/mnt/efs/runs"], "--spot-gang --min-nodes 1 is out "
     "of range: a continued gang is an array job of 2..--nodes members"),
    (["--gang-timeout", "0"], "--gang-timeout (seconds) 0 is out of range: must be between "
     "1 and 86400"),
    (["--gang-cost-cap", "-1"], "--gang-cost-cap -1 is out of range"),
    (["--gang-cost-cap", "lots"], "--gang-cost-cap 'lots' is not a number of dollars"),
])
def test_bad_gang_flags_exit_2(aws, extra, message):
    argv = list(GANG)
    if extra[0] == "--nodes":
        argv[argv.index("--nodes") + 1] = extra[1]
        extra = []
    result = aws.cli(*argv, *extra)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert aws.requests() == []


def test_gang_bounds_need_spot_gang(aws):
    result = aws.cli("submit", "--job-name", "x", "--nodes", "2", "--vcpus", "2", "--memory",
                     "2048", "--gang-timeout", "60")
    assert result.returncode == 2
    assert "--gang-timeout bound a Spot gang: add --spot-gang" in result.stderr


def test_preflight_sets_on_demand_mnp_beside_the_spot_gang(aws):
    aws.write_outputs()
    argv = ["preflight", "--job-name", "gang-heat", "--nodes", "4", "--spot-gang",
            "--timeout", "7200"]
    result = aws.cli(*argv, "--json")
    assert "Traceback" not in result.stderr
    gang = json.loads(result.stdout)["spotGang"]
    # The on-demand price is the one moto_env seeds for the Price List API (SEEDED_PRICES).
    assert gang == {"nodes": 4, "onDemandInstanceType": INSTANCE_TYPE,
                    "onDemandHourlyUsd": 0.34, "spotInstanceType": INSTANCE_TYPE,
                    "spotHourlyUsd": current_spot_price(aws), "attemptTimeoutSeconds": 7200}
    table = aws.cli(*argv)
    spot = current_spot_price(aws)
    assert f"on-demand MNP: 4 x {INSTANCE_TYPE} at $0.3400/h = $1.3600/h" in table.stdout
    assert (f"Spot gang: 4 x {INSTANCE_TYPE} at ${spot:.4f}/h (current Spot price) = "
            f"${4 * spot:.4f}/h") in table.stdout
    assert (f"over the 2 h attempt timeout: on-demand $2.72, gang ${8 * spot:,.2f}"
            in table.stdout)
    assert "submitjob" not in [r.operation for r in aws.requests()]
