"""Start-up of a feed-parsing worker process (see ``service.poller.ParsePool``).

Kept apart so that a worker imports only this, the parser and the standard library.
"""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(parent: int) -> None:
    """Exit when the daemon is gone: a SIGKILLed daemon cannot stop its workers, and they
    would otherwise wait for work forever."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
