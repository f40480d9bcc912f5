"""``eventkv restore``: put a backup in place as a data directory, offline (``Store.restore``).

A backup is what ``backup DIR`` (the REPL's command, ``Store.backup``) writes.  The
backup is checked first -- it must open -- and copied beside the target, then
renamed into place; a non-empty data directory is replaced only with ``--force``,
and never while a store or server has it open.
"""

from __future__ import annotations

import argparse

from eventkv.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backup", metavar="BACKUP_DIR", help="a directory written by backup")
    parser.add_argument("--data-dir", default="meta-data", help="the data directory to restore into "
                        "(default: ./meta-data)")
    parser.add_argument("--force", action="store_true", help="replace a data directory that is not empty")
    parser.add_argument("--databases", type=int, metavar="N", help="the number of databases the backup "
                        "uses (default: the configured number, or as many as its snapshot holds)")


def run(args: argparse.Namespace) -> int:
    Store.restore(args.backup, args.data_dir, force=args.force, databases=args.databases)
    print(f"restored {args.backup} into {args.data_dir}")
    return 0
