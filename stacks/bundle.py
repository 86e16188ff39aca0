"""A deterministic zip of a Python package and the project modules it imports (a Lambda
deployment package built at synth time from the checkout)."""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Zip timestamps start in 1980; a fixed one (and fixed permissions) makes the bytes depend on
# the sources only, so a second synth gives the same hash and Terraform plans no change.
EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # a regular file, rw-r--r--: Lambda's runtime user only reads it
COMPRESS_LEVEL = 9


def _module_file(root: Path, dotted: str) -> Path | None:
    """The file of a project module `a.b` (a/b.py or a/b/__init__.py), None outside it."""
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, root: Path) -> set[str]:
    """Dotted names `path` imports, relative imports resolved against its package."""
    package = path.relative_to(root).parent.parts
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parent = package[:len(package) - node.level + 1] if node.level else ()
            base = ".".join((*parent, *(node.module.split(".") if node.module else ())))
            names.add(base)
            # `from pkg import mod` may name a submodule
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def closure(package: str, root: Path = REPO) -> list[Path]:
    """Every file of `package` and of the project modules it imports, transitively, with
    each containing package's __init__.py; third-party and standard modules are left out."""
    todo = sorted((root / package).glob("*.py"))
    found: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found.add(path)
        parents = path.relative_to(root).parent.parts
        for depth in range(1, len(parents) + 1):
            init = root.joinpath(*parents[:depth], "__init__.py")
            if init.is_file():
                todo.append(init)
        for dotted in _imports(path, root):
            module = _module_file(root, dotted)
            if module is not None:
                todo.append(module)
    return sorted(found)


def build_zip(files: list[Path], root: Path = REPO) -> bytes:
    """The files at their paths under `root`, sorted, with fixed times and modes."""
    target = io.BytesIO()
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=EPOCH)
            info.external_attr = FILE_MODE << 16
            info.create_system = 3  # Unix, so that the mode above is read as one
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=COMPRESS_LEVEL)
    return target.getvalue()


def base64_sha256(data: bytes) -> str:
    """Lambda's CodeSha256 and Terraform's filebase64sha256 form of a package's hash."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()

