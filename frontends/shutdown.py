"""What every server process does once it has decided to stop."""

from __future__ import annotations

import contextlib
import signal


def ignore_stop_signals() -> None:
    """From here on the process is stopping: a second SIGINT or SIGTERM (an impatient operator, a
    supervisor that signals twice) must not kill it while it closes the store and its log.

    The event loop's handlers are gone once it has ended; without this, the default action
    would end the process mid-close (exit status -15 instead of 0).  SIGKILL still works.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):  # not the main thread, or not this platform
            signal.signal(sig, signal.SIG_IGN)
