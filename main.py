"""Synthesize the multi-node Batch platform to Terraform JSON (cdktf.out/)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from stacks.config import TERRAFORM_REQUIRED_VERSION, ConfigError, PlatformConfig

# Beside cdk.tf.json, where Terraform reads every *.tf.json: a Terraform older than the stack
# needs then stops with one "Unsupported Terraform Core version" error. Not in cdk.tf.json:
# checkov's terraform_json parser (3.3.30) stops on `terraform.required_version`.
VERSIONS_FILE = "versions.tf.json"


def build_app(config: PlatformConfig, outdir: str = "cdktf.out"):
    """Build the CDKTF App holding the platform stack (loads the provider: ~4 s)."""
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
    # Absolute: the jsii runtime (a Node process started with the first import) keeps the
    # working directory it started in, so a relative outdir would follow that one, not ours.
    outdir = os.path.abspath("cdktf.out")
    build_app(config, outdir).synth()
    versions = {"terraform": {"required_version": TERRAFORM_REQUIRED_VERSION}}
    stack_dir = Path(outdir, "stacks", config.stack_name)
    (stack_dir / VERSIONS_FILE).write_text(json.dumps(versions, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skips the jsii runtime's slow teardown (seconds); everything is written by now.
    os._exit(code)
