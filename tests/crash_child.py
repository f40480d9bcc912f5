"""A writer to be killed: ``python tests/crash_child.py DATA_DIR [COUNT]`` (run by test_crash.py).

Opens the store with ``fsync="always"`` and writes, in order, write ``i`` for
i = 0, 1, 2, ...:

* ``i % 3 == 2``: a transaction putting ``t{i}:a`` and ``t{i}:b`` (both = ``str(i)``);
  once ``commit`` returns it prints ``t{i}``;
* otherwise: ``put("k{i}", str(i))``; once it returns it prints ``k{i}``.

A printed line is an acknowledgement: the write returned, so it must survive a
``kill -9``.  stdout is flushed after every line.  It stops after COUNT writes
(default: a great many), or when it is killed.
"""

from __future__ import annotations

import sys

from eventkv import Store


def main(directory: str, count: int) -> None:
    store = Store.open(directory, fsync="always", default_ttl=0, background=False)
    out = sys.stdout
    for i in range(count):
        if i % 3 == 2:
            tx = store.begin()
            tx.put(f"t{i}:a", str(i))
            tx.put(f"t{i}:b", str(i))
            tx.commit()
            out.write(f"t{i}\n")
        else:
            store.put(f"k{i}", str(i))
            out.write(f"k{i}\n")
        out.flush()
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10**7)
