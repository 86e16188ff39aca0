"""Which AWS provider the round trip runs: the stack's pinned 6.x, or the machine's 5.x mirror.

Our machines reach no Terraform registry but carry provider 5.100.0 as a filesystem mirror
(shared FACTS). The stack is written for 6.x; against 5.x the few names 6.x renamed are mapped
back here, and nowhere else, and the mapping is printed whenever it is used.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

PROVIDER = "registry.terraform.io/hashicorp/aws"
MIRROR_ENV = "TF_PROVIDER_MIRROR"
# Terraform's implied local mirrors on Linux (developer.hashicorp.com/terraform/cli/config/
# config-file#implied-local-mirror-directories), then where our machines keep 5.100.0.
MIRROR_CANDIDATES = (Path.home() / ".terraform.d/plugins",
                     Path.home() / ".local/share/terraform/plugins",
                     Path("/usr/local/share/terraform/plugins"),
                     Path("/usr/share/terraform/plugins"), Path("/opt/tf-plugins"))


@dataclass(frozen=True)
class Rename:
    """One name provider 6.x gave an attribute that 5.x calls otherwise."""

    block: str  # "resource" or "data"
    type_: str
    v6: str
    v5: str
    source: str


# Provider 6.0 upgrade guide (registry.terraform.io/providers/hashicorp/aws/latest/docs/guides/
# version-6-upgrade): the only 6.x names the stack uses that 5.100 does not know.
BATCH_CE = "version-6-upgrade#resource-aws_batch_compute_environment"
RENAMES_6_TO_5 = (
    Rename("resource", "aws_batch_compute_environment", "name_prefix",
           "compute_environment_name_prefix", BATCH_CE),
    Rename("resource", "aws_batch_compute_environment", "name", "compute_environment_name",
           BATCH_CE),
    Rename("data", "aws_region", "region", "name", "version-6-upgrade#data-source-aws_region"),
)


@dataclass(frozen=True)
class Provider:
    """The provider a run installs: its version, and the mirror it comes from (None: registry)."""

    version: str
    mirror: Path | None

    @property
    def mapped(self) -> bool:
        """True when the stack's 6.x names must be mapped back for this provider."""
        return int(self.version.split(".")[0]) < 6

    def cli_config(self) -> str:
        """A Terraform CLI configuration installing this provider (HCL text)."""
        if self.mirror is None:
            return ""
        return ('provider_installation {\n  filesystem_mirror {\n'
                f'    path    = "{self.mirror}"\n    include = ["{PROVIDER}"]\n  }}\n'
                f'  direct {{\n    exclude = ["{PROVIDER}"]\n  }}\n}}\n')


def _mirrored_versions(root: Path) -> list[str]:
    folder = root / PROVIDER
    if not folder.is_dir():
        return []
    return sorted((p.name for p in folder.iterdir() if re.fullmatch(r"\d+\.\d+\.\d+", p.name)),
                  key=lambda v: tuple(int(x) for x in v.split(".")))


def choose(pinned: str) -> Provider:
    """The pinned version from a mirror that has it, else a mirror's newest, else the registry."""
    roots = [Path(os.environ[MIRROR_ENV])] if os.environ.get(MIRROR_ENV) else MIRROR_CANDIDATES
    found = [(root, v) for root in roots for v in _mirrored_versions(root)]
    for root, version in found:
        if version == pinned:
            return Provider(pinned, root)
    if found:
        root, version = max(found, key=lambda rv: tuple(int(x) for x in rv[1].split(".")))
        return Provider(version, root)
    return Provider(pinned, None)


def _renamed(stack: dict, rename: Rename) -> tuple[dict, int]:
    """The stack with one 6.x name mapped back, and how many places it changed."""
    if rename.block == "resource":  # an argument written in the resource's body
        bodies = [b for b in stack.get("resource", {}).get(rename.type_, {}).values()
                  if rename.v6 in b]
        for body in bodies:
            body[rename.v5] = body.pop(rename.v6)
        return stack, len(bodies)
    # an attribute of a data source, read by references anywhere in the stack
    pattern = re.compile(rf"\bdata\.{rename.type_}\.(\w+)\.{rename.v6}\b")
    text, count = pattern.subn(rf"data.{rename.type_}.\1.{rename.v5}", json.dumps(stack))
    return json.loads(text), count


def map_back(stack: dict, provider: Provider) -> tuple[dict, list[str]]:
    """The stack for this provider, and a line for each name mapped (none for 6.x)."""
    pinned = stack["terraform"]["required_providers"]["aws"]["version"]
    if not provider.mapped and provider.version == pinned:
        return stack, []
    used: list[str] = []
    for rename in RENAMES_6_TO_5 if provider.mapped else ():
        stack, count = _renamed(stack, rename)
        if count:
            used.append(f"{rename.block} {rename.type_}.{rename.v6} -> {rename.v5} "
                        f"({count}x; {rename.source})")
    stack["terraform"]["required_providers"]["aws"]["version"] = provider.version
    used.append(f"required_providers.aws.version {provider.version} (mirror {provider.mirror})")
    return stack, used
