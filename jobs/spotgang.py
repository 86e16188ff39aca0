"""`submit --spot-gang`: one MPI world as an array job of single-node Spot jobs
(launcher/README.md, "Spot gangs"): array index = node index, `MNP_GANG=1`, the gang's wait
bounded by `--gang-timeout` and `--gang-cost-cap` at the current Spot price, no Batch
retries, one member per instance."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, datetime
from typing import Any

from continuation.decide import MIN_GANG_SIZE
from continuation.family import TAG_GANG
from jobs import validate
from jobs.context import Context
from jobs.errors import AwsError, InvalidInput
from jobs.request import JobSpec, submit_request
from launcher.contract import GANG_ENV

# The launcher's knobs (launcher/settings.py); validate.check_env checks names and values.
GANG_TIMEOUT_ENV = "MNP_GANG_TIMEOUT"
GANG_COST_CAP_ENV = "MNP_GANG_COST_CAP"
GANG_PRICE_ENV = "MNP_GANG_PRICE_PER_NODE_HOUR"

# SubmitJob arrayProperties.size (continuation.decide); also bounded by the CLI's --nodes limit.
MIN_GANG = MIN_GANG_SIZE
# launcher/README.md environment table: MNP_GANG_TIMEOUT 1..86400, MNP_GANG_COST_CAP 0..1e6.
MAX_GANG_TIMEOUT_S = 86400
MAX_COST_CAP = 1e6
# DescribeSpotPriceHistory product for Linux instances in a VPC (EC2 API reference).
PRODUCT = "Linux/UNIX"

gang_timeout = validate.int_range(1, MAX_GANG_TIMEOUT_S, "--gang-timeout (seconds)")


def cost_cap(value: str) -> str:
    """Dollars, 0..1e6, kept as typed (the launcher parses it again)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gang-cost-cap {value!r} is not a number of "
                                         "dollars") from None
    if not 0 <= number <= MAX_COST_CAP or not value.replace(".", "", 1).isdigit():
        raise argparse.ArgumentTypeError(f"--gang-cost-cap {value} is out of range: must be "
                                         f"dollars between 0 and {MAX_COST_CAP:g}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--spot-gang and its bounds."""
    parser.add_argument(
        "--spot-gang", action="store_true",
        help="run the --nodes N world as a gang of N single-node Spot jobs (an array job on "
        "the stack's Spot queue, one whole instance each, no Batch retries; "
        "launcher/README.md 'Spot gangs')")
    parser.add_argument("--gang-timeout", type=gang_timeout, metavar="S",
                        help="seconds the members wait for each other before the gang gives "
                        f"up (1..{MAX_GANG_TIMEOUT_S}; the launcher's default 600)")
    parser.add_argument("--gang-cost-cap", type=cost_cap, metavar="DOLLARS",
                        help="dollars the gang's waiting may cost, all members billed at the "
                        "current Spot price (shortens the wait)")


def check(args: argparse.Namespace) -> None:
    """Flags that do not fit a gang: InvalidInput (exit 2), before any AWS call."""
    if not args.spot_gang:
        stray = [f for f, v in (("--gang-timeout", args.gang_timeout),
                                ("--gang-cost-cap", args.gang_cost_cap)) if v is not None]
        if stray:
            raise InvalidInput(f"{' and '.join(stray)} bound a Spot gang: add --spot-gang")
        return
    if args.nodes < MIN_GANG:
        raise InvalidInput(f"--spot-gang --nodes {args.nodes} is out of range: a gang is an "
                           f"array job of {MIN_GANG}..{validate.MAX_NODES} members",
                           hint="use --spot for one node")
    for flag, value, why in (
        ("--spot", args.spot, "--spot is one single-node job"),
        ("--vcpus", args.vcpus, "a member is one whole Spot instance"),
        ("--memory", args.memory, "a member is one whole Spot instance"),
        ("--image-tag", args.image_tag, "not built for gangs yet"),
        ("--stage-in", args.stage_in, "not built for gangs yet"),
        ("--stage-out", args.stage_out, "not built for gangs yet"),
    ):
        if value:
            raise InvalidInput(f"--spot-gang: drop {flag} ({why})")
    if args.min_nodes is not None and args.min_nodes < MIN_GANG:
        raise InvalidInput(f"--spot-gang --min-nodes {args.min_nodes} is out of range: a "
                           f"continued gang is an array job of {MIN_GANG}..--nodes members")
    if args.attempts not in (None, 1):
        raise InvalidInput(f"--spot-gang --attempts {args.attempts}: a gang runs without "
                           "Batch retries (a retried member would not join the others' "
                           "attempt); drop --attempts")


def spot_price(ctx: Context, instance_type: str) -> float:
    """The highest current Spot price of `instance_type` over the region's zones (the
    member's zone is Batch's choice, so the bound assumes the dearest)."""
    now = datetime.now(UTC)
    found = ctx.api.read("ec2", "describe_spot_price_history", InstanceTypes=[instance_type],
                         ProductDescriptions=[PRODUCT], StartTime=now, EndTime=now)
    latest: dict[str, dict[str, Any]] = {}
    for entry in found.get("SpotPriceHistory") or []:
        zone = entry.get("AvailabilityZone", "")
        if zone not in latest or entry["Timestamp"] > latest[zone]["Timestamp"]:
            latest[zone] = entry
    if not latest:
        raise AwsError(f"--spot-gang: EC2 has no Spot price for {instance_type} here",
                       hint="check the Spot compute environment's instance types")
    return max(float(e["SpotPrice"]) for e in latest.values())


def gang_env(args: argparse.Namespace, price: float) -> dict[str, str]:
    """The launcher's gang variables for every member."""
    env = {GANG_ENV: "1", GANG_PRICE_ENV: f"{price:g}"}
    if args.gang_timeout is not None:
        env[GANG_TIMEOUT_ENV] = str(args.gang_timeout)
    if args.gang_cost_cap is not None:
        env[GANG_COST_CAP_ENV] = args.gang_cost_cap
    return env


def gang_spec(spec: JobSpec, env: dict[str, str]) -> JobSpec:
    """A single-node Spot spec with the gang's variables (checked as --env's are) and
    retries off."""
    checked = validate.check_env([*spec.env.items(), *env.items()])
    return dataclasses.replace(spec, env=checked, attempts=1)


def gang_request(spec: JobSpec, size: int) -> dict[str, Any]:
    """SubmitJob for the gang: the member's container job as an array of `size`."""
    request = submit_request(spec)
    request["arrayProperties"] = {"size": size}
    # The controller's role may cancel only arrays carrying it (stacks/continuation.py).
    request["tags"] = {**request["tags"], TAG_GANG: str(size)}
    # A gang member that exits is the world's outcome: no evaluateOnExit rule may retry it.
    request["retryStrategy"] = {"attempts": 1}
    return request


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The same world as an on-demand multi-node job and as a Spot gang, per hour."""

    nodes: int
    on_demand_type: str | None
    on_demand_hourly: float | None  # one node
    spot_type: str
    spot_hourly: float  # one member, the dearest zone's current price
    timeout_s: int | None

    def lines(self) -> list[str]:
        """What preflight prints."""
        gang = self.nodes * self.spot_hourly
        spot = (f"Spot gang: {self.nodes} x {self.spot_type} at ${self.spot_hourly:.4f}/h "
                f"(current Spot price) = ${gang:.4f}/h")
        if self.on_demand_hourly is None:
            return [f"on-demand MNP: price unknown for {self.on_demand_type}", spot]
        mnp = self.nodes * self.on_demand_hourly
        lines = [f"on-demand MNP: {self.nodes} x {self.on_demand_type} at "
                 f"${self.on_demand_hourly:.4f}/h = ${mnp:.4f}/h", spot]
        if mnp > 0:
            lines.append(f"the gang costs {gang / mnp:.0%} of the on-demand job per hour "
                         "(Spot prices change; a reclaimed member ends the attempt)")
        if self.timeout_s is not None:
            hours = self.timeout_s / 3600
            lines.append(f"over the {hours:g} h attempt timeout: on-demand ${mnp * hours:,.2f}"
                         f", gang ${gang * hours:,.2f}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """JSON form (preflight --json's spotGang)."""
        return {"nodes": self.nodes, "onDemandInstanceType": self.on_demand_type,
                "onDemandHourlyUsd": self.on_demand_hourly, "spotInstanceType": self.spot_type,
                "spotHourlyUsd": self.spot_hourly, "attemptTimeoutSeconds": self.timeout_s}
