"""``python -m tools.replay``: the same program as ``eventkv replay``."""

import sys

from tools.replay.cli import main

sys.exit(main())
