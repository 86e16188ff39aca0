"""``python -m bench.synth_phases OUTDIR``: where `make synth`'s time goes, as one JSON line.

Times the phases of main.py's work in one fresh process: the provider binding alone (as
stacks/bindings.py loads it), the rest of the imports (cdktf, stacks' constructs), building the
constructs, and writing the JSON.
Ends with ``os._exit`` like main.py, so the jsii teardown is not counted (it is skipped there).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    """Run the phases, writing the synthesized stack under ``argv[0]``."""
    outdir = argv[0] if argv else "cdktf.out"
    t0 = time.perf_counter()
    from stacks import bindings

    bindings.install()  # what main.py's first import of stacks does
    import cdktf_cdktf_provider_aws.batch_job_definition  # noqa: F401 - the phase being timed

    t1 = time.perf_counter()
    import main as app_main
    from stacks.config import PlatformConfig
    from stacks.platform_stack import PlatformStack  # noqa: F401 - imported by build_app too

    t2 = time.perf_counter()
    app = app_main.build_app(PlatformConfig.from_env(), outdir=outdir)
    t3 = time.perf_counter()
    app.synth()
    t4 = time.perf_counter()
    print(json.dumps({"provider_import": t1 - t0, "other_imports": t2 - t1,
                      "construct": t3 - t2, "synth_write": t4 - t3}), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
