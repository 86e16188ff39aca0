"""JSON text with Terraform template pieces where a value is known only at plan."""

from __future__ import annotations

import json


class Template(str):
    """Terraform template text standing, as written, for one JSON value or list element."""


def dumps(value: object) -> str:
    """`json.dumps`, except that each Template is written raw instead of as a JSON string."""
    pieces: list[Template] = []

    def mark(item: object) -> object:
        if isinstance(item, Template):
            pieces.append(item)
            return f"\x00{len(pieces) - 1}\x00"  # NUL never occurs in our own strings
        if isinstance(item, dict):
            return {key: mark(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [mark(inner) for inner in item]
        return item

    text = json.dumps(mark(value))
    for index, piece in enumerate(pieces):
        text = text.replace(json.dumps(f"\x00{index}\x00"), piece)
    return text
