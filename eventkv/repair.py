"""``eventkv repair``: cut a damaged log at its first bad record (as ``redis-check-aof --fix``).

Start-up refuses a log with damage before its tail; this is the operator's way
out.  The records from the damage on leave the log and are kept beside it in
``AOF.txt.corrupt-<time>``, so nothing is destroyed.
"""

from __future__ import annotations

import argparse

from eventkv.log import repair
from eventkv.store import check_data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default="meta-data", help="the data directory (default: ./meta-data)")


def run(args: argparse.Namespace) -> int:
    check_data_dir(args.data_dir)
    print(repair(args.data_dir))
    return 0
