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
from jobs.errors import InvalidInput
from jobs.outputs import Settings
from launcher.inputs import known_region


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal (pipes, CI, tests) rich would wrap at 80 columns and cut job ids.
    width = None if stream.isatty() else 200
    # Job names, reasons, log lines and stack outputs come from outside: as rich markup, a
    # '[/x]' in them raises MarkupError and '[red]' or ':smile:' is silently altered.
    return Console(file=stream, width=width, highlight=False, soft_wrap=not stream.isatty(),
                   markup=False, emoji=False)


def _check_region(region: str | None, source: str) -> None:
    if region is None:
        return
    try:
        known_region(region)
    except ValueError as exc:
        raise InvalidInput(f"{source}: {exc}", hint="set AWS_REGION to the stack's region") \
            from None


def _region(env: str) -> str | None:
    """The region an environment variable names; set but empty or unknown is bad input."""
    if env not in os.environ:
        return None
    value = os.environ[env]
    if not value:
        raise InvalidInput(f"{env} is set but empty", hint="unset it or name a region")
    _check_region(value, env)
    return value


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
        session = boto3.session.Session(region_name=_region("AWS_REGION"))
        if session.region_name is None:
            region = self.settings.optional(None, "region")
            if region:
                session = boto3.session.Session(region_name=region)
        _check_region(session.region_name, "the AWS region in use")
        return BatchJobs(session=session)
