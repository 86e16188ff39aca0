"""What every subcommand receives: settings, the AWS wrapper and the two consoles."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import boto3
from rich.console import Console

from jobs.client import BatchJobs
from jobs.outputs import Settings


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal (pipes, CI, tests) rich would wrap at 80 columns and cut job ids.
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=not stream.isatty())


@dataclass
class Context:
    """Per-invocation state; `api` is created on first use so bad input never builds clients."""

    settings: Settings
    api_factory: Callable[[], BatchJobs] | None = None
    out: Console = field(default_factory=lambda: _console(stderr=False))
    err: Console = field(default_factory=lambda: _console(stderr=True))

    @cached_property
    def api(self) -> BatchJobs:
        """The AWS wrapper."""
        if self.api_factory is not None:
            return self.api_factory()
        # botocore reads AWS_DEFAULT_REGION and profiles but not AWS_REGION, which the AWS
        # docs and other SDKs use; without any, the stack's own region is the right default.
        session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)
        if session.region_name is None:
            region = self.settings.optional(None, "region")
            if region:
                session = boto3.session.Session(region_name=region)
        return BatchJobs(session=session)
