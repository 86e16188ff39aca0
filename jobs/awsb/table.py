"""ParallelCluster's two output shapes: a plain column table and `key: value` blocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from jobs.render import printable

# aws-parallelcluster awsbatch-cli/src/awsbatch/common.py (Output.show): keys padded to 25,
# each item closed by a line of 25 dashes; "No items to show" when there are none.
KEY_WIDTH = 25
NO_ITEMS = "No items to show"
MISSING = "-"


def when(ms: int | None) -> str:
    """Epoch milliseconds as local ISO time without fractions, as ParallelCluster printed them."""
    if not ms:
        return MISSING
    return datetime.fromtimestamp(ms / 1000).replace(microsecond=0).isoformat()


def columns(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The plain table `tabulate` draws by default: headers, dashes, two spaces between columns,
    numbers right-aligned."""
    cells = [[printable(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) and bool(rows)
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w)
                         for v, w, n in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(list(headers)), line(["-" * w for w in widths]),
                      *(line(r) for r in cells)])


def details(items: Sequence[Sequence[tuple[str, object]]]) -> str:
    """Each item as `key: value` lines and a dashed line."""
    if not items:
        return NO_ITEMS
    lines = []
    for item in items:
        lines.extend(f"{key:{KEY_WIDTH}}: {printable(value)}" for key, value in item)
        lines.append("-" * KEY_WIDTH)
    return "\n".join(lines)


def records(rows: Sequence[Mapping[str, object]], keys: Sequence[str],
            detail_keys: Sequence[str], in_detail: bool) -> str:
    """Rows as ParallelCluster prints them: `details` of detail_keys, else `columns` of keys.

    A key a row lacks shows as MISSING.
    """
    if in_detail:
        return details([[(k, r.get(k, MISSING)) for k in detail_keys] for r in rows])
    return columns(keys, [[r.get(k, MISSING) for k in keys] for r in rows])
