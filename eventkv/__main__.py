"""``python -m eventkv``: the ``eventkv`` command."""

import sys

from eventkv.cli import main

sys.exit(main())
