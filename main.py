"""Synthesize the multi-node Batch platform to Terraform JSON (cdktf.out/)."""

from __future__ import annotations

import os
import sys

from stacks.config import ConfigError, PlatformConfig


def build_app(config: PlatformConfig, outdir: str = "cdktf.out"):
    """Build the CDKTF App holding the platform stack (imports the provider: ~13 s)."""
    from cdktf import App

    from stacks.platform_stack import PlatformStack

    app = App(outdir=outdir)
    PlatformStack(app, config.stack_name, config=config)
    return app


def main() -> int:
    """Validate the environment first, so a bad value writes nothing."""
    try:
        config = PlatformConfig.from_env()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    settings = config.settings
    print(f"region {settings.region} (from {settings.region_source})")
    build_app(config).synth()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skips the jsii runtime's slow teardown (seconds); everything is written by now.
    os._exit(code)
