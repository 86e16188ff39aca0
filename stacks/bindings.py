"""Import the AWS provider's bindings one resource module at a time.

The prebuilt package's ``__init__`` (cdktf-cdktf-provider-aws 21.22.1; HashiCorp archived the
package on 2025-12-10, so this layout is final) ends by importing all 2,213 resource modules:
about 13 s of every `make synth` and of every test session, for the few dozen the stack uses.
Running that ``__init__`` without its tail gives the same package (its jsii assembly,
``check_type``, publication's public module); each ``from cdktf_cdktf_provider_aws.x import X``
then imports module x alone. A package of another layout is imported as it is. Installing the
finder imports nothing: `make synth` still refuses a bad setting before the provider loads.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE = "cdktf_cdktf_provider_aws"
# The line after which the package's __init__ only imports its resource modules.
LAST_LINE = "\npublication.publish()\n"


class InitWithoutTail(importlib.abc.Loader):
    """Runs the head of a package's __init__, up to and with LAST_LINE."""

    def __init__(self, source: str, origin: str) -> None:
        self.source, self.origin = source, origin

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        exec(compile(self.source, self.origin, "exec"), module.__dict__)  # noqa: S102


class Finder(importlib.abc.MetaPathFinder):
    """On the first import of one package, finds it as usual and loads it with
    InitWithoutTail (a package of another layout, or a module, loads as found)."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name != self.package:
            return None
        sys.meta_path.remove(self)  # once, and not for the search below
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or spec.submodule_search_locations is None:
            return spec
        head, found, _ = Path(spec.origin).read_text().partition(LAST_LINE)
        if found:
            spec.loader = InitWithoutTail(head + LAST_LINE, spec.origin)
        return spec


def install(package: str = PACKAGE) -> None:
    """Until ``package`` is imported, import it without its tail (cheap: imports nothing)."""
    if package not in sys.modules and not any(
            isinstance(finder, Finder) and finder.package == package for finder in sys.meta_path):
        sys.meta_path.insert(0, Finder(package))
