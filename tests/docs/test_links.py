"""Every relative link in the repository's Markdown pages names a file or folder that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Not the project's pages: environments, generated output, dependencies.
SKIP_DIRS = {".git", ".venv", "node_modules", "cdktf.out", ".bench-out", ".pytest_cache",
             "local-efs", "local-logs", "build"}
# [text](target) and ![alt](target); a target ends at whitespace or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def pages() -> list[Path]:
    """The repository's *.md files, outside SKIP_DIRS."""
    return sorted(p for p in REPO.rglob("*.md")
                  if not SKIP_DIRS.intersection(p.relative_to(REPO).parts))


def relative_links(text: str) -> list[str]:
    """Link targets outside code blocks that are neither URLs nor anchors in the same page."""
    targets, in_code = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            in_code = not in_code
            continue
        if in_code:
            continue
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#"):
                targets.append(target)
    return targets


def test_the_pages_are_found() -> None:
    found = {p.relative_to(REPO).as_posix() for p in pages()}
    assert {"README.md", "docs/CONTRACTS.md", "stacks/README.md"} <= found


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    missing = [t for t in relative_links(page.read_text())
               if not (page.parent / t.split("#", 1)[0]).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


@pytest.mark.parametrize(("text", "expected"), [
    ("see [a](stacks/README.md#efa) and ![p](docs/x.png)", ["stacks/README.md#efa", "docs/x.png"]),
    ("[web](https://example.com) [here](#top) [m](mailto:a@b.c)", []),
    ("`[not](a-link.md)` but [this](b.md)", ["b.md"]),
    ("```\n[in](code.md)\n```\n[out](c.md)", ["c.md"]),
])
def test_relative_links_are_read(text: str, expected: list[str]) -> None:
    assert relative_links(text) == expected
