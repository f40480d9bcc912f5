"""``python main.py``: the interactive command interface, as in the original design."""

import sys

from eventkv.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
