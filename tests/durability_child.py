"""A writer that seals and compacts often, to be killed: ``python tests/durability_child.py DIR``.

Opens the store with ``fsync="always"``, a tiny segment size and a fast background
cycle, so that segments are sealed and compaction processes run all the time.
Writes ``put k{i}`` and, every third write, a transaction of ``t{i}:a`` and
``t{i}:b``; prints each acknowledgement (flushed) once the write returned.
"""

from __future__ import annotations

import sys

from eventkv import Store


def main(directory: str) -> None:
    store = Store.open(directory, fsync="always", default_ttl=0, segment_bytes=2048, hz=100,
                       snapshot_seconds=0, retention_seconds=3600)
    out = sys.stdout
    for i in range(10**7):
        if i % 3 == 2:
            with store.transaction() as tx:
                tx.put(f"t{i}:a", str(i))
                tx.put(f"t{i}:b", str(i))
            out.write(f"t{i}\n")
        else:
            store.put(f"k{i}", str(i))
            out.write(f"k{i}\n")
        out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
