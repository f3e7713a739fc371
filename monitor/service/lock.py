"""One daemon per SQLite file: a second one refuses to start instead of fighting for writes.

PostgreSQL needs no lock: several daemons share its work by design (SPEC §8).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url


class AlreadyRunning(Exception):
    """Another daemon holds this database."""


class InstanceLock:
    """An exclusive, non-blocking ``flock`` on ``<database>.lock``, released on exit
    (also when the process is killed: the kernel drops it with the file descriptor)."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        database = url.database if url.get_backend_name() == "sqlite" else None
        self.path = (Path(database).expanduser().resolve().with_name(Path(database).name + ".lock")
                     if database and database != ":memory:" else None)
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise AlreadyRunning(
                f"another pressmon daemon (pid {holder}) is running on this SQLite database "
                f"(lock {self.path}); stop it first, or use PostgreSQL to run several") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
