"""`python -m emulator --nodes N -- CMD...`: a Batch multi-node job in network namespaces."""

import sys

from emulator.namespaces import main

sys.exit(main())
