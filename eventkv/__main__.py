"""``python -m eventkv``: the ``eventkv`` command."""

import sys

try:
    from eventkv.cli import main
except KeyboardInterrupt:  # Ctrl-C while starting: quietly, as the command ends one
    sys.exit(130)

sys.exit(main())
