"""`python -m launcher CMD...`: the same as `mnp-launch CMD...`."""

import sys

from launcher.cli import main

sys.exit(main())
