"""Run the checks for each job spec, draw the report, and refuse a job that cannot start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from jobs.client import BatchJobs
from jobs.errors import AwsError, InvalidInput
from jobs.preflight import checks, sizing
from jobs.preflight.facts import Facts, Reader, Unknown, gather, quota_value, running_vcpus
from jobs.preflight.lustre import LustreCost, lustre_cost
from jobs.preflight.pricing import Estimate, on_demand_price
from jobs.request import JobSpec

_STYLES = {checks.PASS: "green", checks.FAIL: "bold red", checks.UNKNOWN: "yellow"}


class PreflightFailed(InvalidInput):
    """A check failed: the job could not start, so nothing is sent (exit 2)."""


class PreflightUndecided(AwsError):
    """No check could be decided (no credentials, reads denied): preflight says so (exit 1)."""


@dataclass
class Report:
    """The checks and the cost bound of one job."""

    spec: JobSpec
    checks: list[checks.Check]
    estimate: Estimate
    lustre: LustreCost | None = None  # the stack's FSx for Lustre, when it has one

    @property
    def failed(self) -> list[checks.Check]:
        """The FAIL checks."""
        return [c for c in self.checks if c.status == checks.FAIL]

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"jobName": self.spec.name, "nodes": self.spec.nodes,
                "checks": [c.as_dict() for c in self.checks],
                "summary": checks.summary(self.checks), "estimate": self.estimate.as_dict(),
                "fsx": self.lustre.as_dict() if self.lustre else None}


class _PerType:
    """Quota, running vCPUs and price are read once per chosen type, not once per spec."""

    def __init__(self, reader: Reader, facts: Facts) -> None:
        self._reader = reader
        self._facts = facts
        self._cache: dict[tuple[str, str], Any] = {}

    def _once(self, key: tuple[str, str], read: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    def quota(self, chosen: str, spot: bool) -> tuple[float | Unknown | None,
                                                      int | Unknown | None]:
        mapped = sizing.quota_for(chosen, spot)
        if mapped is None:
            return None, None
        known = self._facts.types if isinstance(self._facts.types, dict) else {}
        value = self._once(("quota", mapped[0]), lambda: quota_value(self._reader, mapped[0]))
        running = self._once(("running", mapped[0]),
                             lambda: running_vcpus(self._reader, mapped[0], spot, known))
        return value, running

    def price(self, chosen: str) -> float | Unknown:
        region = self._reader.api.region()
        return self._once(("price", chosen),
                          lambda: on_demand_price(self._reader, chosen, region))


def _limits(facts: Facts, spec: JobSpec) -> tuple[int | None, int]:
    """Attempt timeout and attempts: the request's, else the job definition's."""
    definition = facts.definition if isinstance(facts.definition, dict) else {}
    timeout = spec.timeout or (definition.get("timeout") or {}).get("attemptDurationSeconds")
    attempts = spec.attempts or (definition.get("retryStrategy") or {}).get("attempts") or 1
    return (int(timeout) if timeout else None), int(attempts)


def evaluate(facts: Facts, spec: JobSpec, per_type: _PerType) -> Report:
    """Every check for one spec, in jobs/README.md's order, and the cost bound."""
    chosen = checks.choose(facts, spec)
    env = facts.environment
    spot = getattr(env, "resource_type", "") == "SPOT"
    quota, running = per_type.quota(chosen, spot) if chosen else (None, None)
    found = [
        checks.check_fit(facts, spec),
        checks.check_max_vcpus(facts, spec, chosen),
        checks.check_quota(spec, chosen, facts, quota, running),
        checks.check_offering(facts, spec, chosen),
        checks.check_image(facts),
        checks.check_efa(facts, spec),
        checks.check_shared_memory(facts, spec),
    ]
    timeout, attempts = _limits(facts, spec)
    price = per_type.price(chosen) if chosen else None
    # Without a type, the fit check says why: none fits (FAIL), or the types are not known.
    note = (price.reason if isinstance(price, Unknown)
            else found[0].message if chosen is None and found[0].status == checks.UNKNOWN
            else "")
    estimate = Estimate(nodes=spec.nodes, instance_type=chosen,
                        hourly_usd=price if isinstance(price, float) else None,
                        timeout_s=timeout, attempts=attempts, price_note=note)
    return Report(spec, found, estimate)


def run(api: BatchJobs, specs: list[JobSpec], image_tag: str | None,
        fsx_file_system_id: str | None = None) -> list[Report]:
    """Read once, check every spec (scale-test has one per node count); with the stack's
    FSx for Lustre file system, its monthly cost too."""
    view = api.preflight_view()
    facts = gather(view, specs[0].queue, specs[0].definition, image_tag)
    reader = Reader(view)
    per_type = _PerType(reader, facts)
    lustre = (lustre_cost(reader, fsx_file_system_id, view.region())
              if fsx_file_system_id else None)
    reports = [evaluate(facts, spec, per_type) for spec in specs]
    for report in reports:
        report.lustre = lustre
    return reports


def table(report: Report) -> Table:
    """The report as a rich table; every cell is plain Text (AWS strings are not markup)."""
    spec = report.spec
    grid = Table(title=Text(f"preflight: {spec.name}, {spec.nodes} nodes x {spec.vcpus} vCPUs, "
                            f"{spec.memory} MiB, queue {spec.queue}"), title_justify="left")
    for column in ("check", "status", "found", "what to change"):
        grid.add_column(column)
    for check in report.checks:
        grid.add_row(Text(check.name), Text(check.status, style=_STYLES[check.status]),
                     Text(check.message), Text(check.hint or "-"))
    return grid


def _print(console: Console, renderable: RenderableType) -> None:
    """Off a terminal, as wide as the table needs: logs and tests see one line per check."""
    if console.is_terminal:
        console.print(renderable)
        return
    needed = Measurement.get(console, console.options.update(width=10_000), renderable).maximum
    width = console.width
    console.width = max(needed, width)
    try:
        console.print(renderable)
    finally:
        console.width = width


def undecided(reports: list[Report]) -> list[checks.Check]:
    """When no check of any report was decided (all UNKNOWN), one check per distinct reason."""
    found = [c for r in reports for c in r.checks]
    if not found or any(c.status != checks.UNKNOWN for c in found):
        return []
    return list({c.message: c for c in found}.values())


def refuse_undecided(reports: list[Report]) -> None:
    """Raise PreflightUndecided naming why, when no check could be decided."""
    reasons = undecided(reports)
    if reasons:
        raise PreflightUndecided(
            "preflight could not decide any check: " + "; ".join(c.message for c in reasons),
            hint=next((c.hint for c in reasons if c.hint), ""))


def show(console: Console, reports: list[Report], full: bool) -> None:
    """The tables and cost lines (full), or one line per job when every check passed, or one
    line in all when no check could be decided (the same reason in every row says nothing)."""
    reasons = undecided(reports)
    if reasons:
        console.print(Text("preflight: no check could be decided: "
                           + "; ".join(f"{c.message}" + (f" (hint: {c.hint})" if c.hint else "")
                                       for c in reasons)))
        return
    for report in reports:
        counts = checks.summary(report.checks)
        if full or counts[checks.PASS] != len(report.checks):
            _print(console, table(report))
        else:
            console.print(Text(f"preflight {report.spec.name}: all {len(report.checks)} checks "
                               "passed"))
        console.print(Text(report.estimate.line()))
        if report.lustre:
            console.print(Text(report.lustre.line()))


def refuse(reports: list[Report]) -> None:
    """Raise PreflightFailed when any check failed."""
    failed = [(r, c) for r in reports for c in r.failed]
    if failed:
        names = ", ".join(sorted({c.name for _, c in failed}))
        raise PreflightFailed(
            f"preflight: {len(failed)} check{'s' if len(failed) != 1 else ''} failed ({names}); "
            "nothing was submitted",
            hint="change what the table says, or pass --no-preflight to submit anyway")
