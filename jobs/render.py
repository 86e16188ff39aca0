"""Reading fields out of DescribeJobs results and drawing them as rich tables."""

from __future__ import annotations

import unicodedata
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

# Control, format (bidi overrides, zero-width) and line/paragraph separator characters: raw,
# an ESC in a status reason clears the screen or retitles the terminal; they are shown escaped.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def printable(text: object, keep: str = "") -> str:
    """Outside text (AWS fields, log lines, job output) with every control character shown as
    its Python escape (ESC as \\x1b); characters in `keep` (e.g. a log's tabs) stay."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in _HIDDEN and ch not in keep else ch
        for ch in str(text))


def _add_row(table: Table, *cells: object) -> None:
    table.add_row(*(printable(cell) for cell in cells))


def when(ms: int | None) -> str:
    """Epoch milliseconds as UTC time, '-' when unset."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def seconds(job: dict[str, Any]) -> float | None:
    """Run time from startedAt to stoppedAt, if both are known."""
    start, stop = job.get("startedAt"), job.get("stoppedAt")
    return (stop - start) / 1000 if start and stop and stop >= start else None


def _last_container(job: dict[str, Any]) -> dict[str, Any]:
    attempts = job.get("attempts") or []
    return (attempts[-1].get("container") or {}) if attempts else {}


def exit_code(job: dict[str, Any]) -> int | None:
    """The container's exit code, from the job or its last attempt."""
    code = (job.get("container") or {}).get("exitCode")
    return code if code is not None else _last_container(job).get("exitCode")


def log_stream(job: dict[str, Any]) -> str | None:
    """The CloudWatch log stream of a (node) job, from the job or its last attempt."""
    stream = (job.get("container") or {}).get("logStreamName")
    return stream or _last_container(job).get("logStreamName")


def log_group(job: dict[str, Any]) -> str | None:
    """The awslogs group the job definition configured, if any."""
    containers = [job.get("container") or {}]
    for node_range in (job.get("nodeProperties") or {}).get("nodeRangeProperties", []):
        containers.append(node_range.get("container") or {})
    for container in containers:
        options = (container.get("logConfiguration") or {}).get("options") or {}
        if options.get("awslogs-group"):
            return str(options["awslogs-group"])
    return None


def num_nodes(job: dict[str, Any]) -> int | None:
    """Node count of a multi-node job (None for a single-container job)."""
    return (job.get("nodeProperties") or {}).get("numNodes")


def progress_line(job: dict[str, Any], nodes: list[dict[str, Any] | None]) -> str:
    """One line of watch output: job status and a count of node states."""
    line = f"{job['jobId']} {job.get('status', '?')}"
    if nodes:
        counts = Counter((n or {}).get("status", "not created") for n in nodes)
        line += " | nodes: " + ", ".join(f"{c} {s}" for s, c in sorted(counts.items()))
    if job.get("statusReason"):
        line += f" | {job['statusReason']}"
    return printable(line)


def job_table(job: dict[str, Any]) -> Table:
    """Key facts of one job as a two-column table."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    attempts = job.get("attempts") or []
    code = exit_code(job)
    rows = [
        ("job", f"{job.get('jobName', '')} ({job['jobId']})"),
        ("status", job.get("status", "?")),
        ("reason", job.get("statusReason") or "-"),
        ("queue", job.get("jobQueue", "-")),
        ("definition", job.get("jobDefinition", "-")),
        ("nodes", str(num_nodes(job) or 1)),
        ("created", when(job.get("createdAt"))),
        ("started", when(job.get("startedAt"))),
        ("stopped", when(job.get("stoppedAt"))),
        ("attempts", str(len(attempts))),
        ("exit code", "-" if code is None else str(code)),
    ]
    for key, value in rows:
        _add_row(table, key, value)
    return table


def nodes_table(nodes: list[dict[str, Any] | None]) -> Table:
    """One row per node job `<id>#i`."""
    table = Table(title="nodes", title_justify="left")
    for name in ("node", "status", "attempts", "exit code", "reason", "log stream"):
        table.add_column(name)
    for index, node in enumerate(nodes):
        if node is None:
            _add_row(table, index, "not created", "-", "-", "-", "-")
            continue
        code = exit_code(node)
        main = " (main)" if (node.get("nodeDetails") or {}).get("isMainNode") else ""
        _add_row(
            table, f"{index}{main}", node.get("status", "?"), str(len(node.get("attempts") or [])),
            "-" if code is None else str(code), node.get("statusReason") or "-",
            log_stream(node) or "-",
        )
    return table


def attempts_table(job: dict[str, Any]) -> Table:
    """One row per attempt of the job (retries show up here)."""
    table = Table(title="attempts", title_justify="left")
    for name in ("attempt", "started", "stopped", "exit code", "reason"):
        table.add_column(name)
    for number, attempt in enumerate(job.get("attempts") or [], start=1):
        container = attempt.get("container") or {}
        code = container.get("exitCode")
        _add_row(
            table, number, when(attempt.get("startedAt")), when(attempt.get("stoppedAt")),
            "-" if code is None else str(code),
            attempt.get("statusReason") or container.get("reason") or "-",
        )
    return table


def summaries_table(summaries: list[dict[str, Any]]) -> Table:
    """ListJobs results."""
    table = Table()
    for name in ("job id", "name", "status", "nodes", "created", "reason"):
        table.add_column(name)
    for job in summaries:
        _add_row(
            table, job["jobId"], job.get("jobName", ""), job.get("status", ""),
            str((job.get("nodeProperties") or {}).get("numNodes") or 1),
            when(job.get("createdAt")), job.get("statusReason") or "",
        )
    return table
