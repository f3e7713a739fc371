"""Worker processes: their start-up, and the pool that runs them (``SpawnedPool``).

Used by the feed-parsing workers (``service.poller.ParsePool``) and the NLP processes
(``nlp.NlpWorkers``). Kept apart, standard library only, so that a parse worker imports only
this, the parser and the pure text code.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

GC_THRESHOLD = (20_000, 20, 20)
"""The cyclic garbage collector's thresholds while a daemon runs, in it and in its parse
workers (Python's: 700, 10, 10). A poll allocates hundreds of short-lived objects per entry
(parsed entries, tokens, rows, hits) that reference counting frees; at 700 allocations the
collector ran ~1,800 times in a run of the 2,000-feed ingest bench for ~1 s of the daemon's
CPU, at 20,000 ~50 times for ~0.3 s. In a parse worker it took ~0.5 ms of each first poll's
~9 ms; at 20,000, ~0.3 ms."""


def exit_with_parent(parent: int) -> None:
    """Exit when the daemon is gone: a SIGKILLed daemon cannot stop its workers, and they
    would otherwise wait for work forever."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def start_parse_worker(parent: int) -> None:
    """A parse worker's start: it exits with its parent and collects garbage as the daemon
    does (``GC_THRESHOLD``)."""
    exit_with_parent(parent)
    gc.set_threshold(*GC_THRESHOLD)


def _nothing() -> None:
    """A call that only makes the pool spawn a worker (``SpawnedPool.start``)."""


class SpawnedPool:
    """A ``ProcessPoolExecutor`` of freshly spawned workers (never forked from the threaded
    daemon): started on first use, replaced after a worker dies, shut down for good once.

    ``initializer(parent_pid)`` runs first in every worker; it should call
    ``exit_with_parent``.
    """

    def __init__(self, workers: int, initializer: Callable[[int], None] = exit_with_parent) -> None:
        self.workers = workers
        self._initializer = initializer
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    def get(self) -> ProcessPoolExecutor | None:
        """The executor, started if need be; None once shut down."""
        with self._lock:
            if self._closed:
                return None
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=self._initializer, initargs=(os.getpid(),))
            return self._executor

    def discard(self, executor: ProcessPoolExecutor, *, kill: bool = False) -> None:
        """Drop an executor whose worker died (``BrokenProcessPool``) or, with ``kill``, hangs
        (its workers are killed); the next ``get`` starts new workers."""
        with self._lock:
            if self._executor is executor:
                self._executor = None
        if kill:
            for process in list(executor._processes.values()):  # noqa: SLF001
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    def start(self, task: Callable[..., object] | None = None, *args: object) -> list[Future[object]]:
        """Start the workers now instead of on first use, without waiting for them: each is
        spawned and runs its initializer while the caller goes on. With ``task``, each of the
        calls made to spawn them is ``task(*args)`` (say, to load what the work needs). The
        calls' futures are returned: done once the workers are ready. Nothing is done (and
        nothing returned) when the workers have started already."""
        if self.started:
            return []
        executor = self.get()
        if executor is None:
            return []
        # A pool spawns a worker per call while none is idle, up to ``workers``.
        return [executor.submit(task or _nothing, *args) for _ in range(self.workers)]

    @property
    def started(self) -> bool:
        return self._executor is not None

    @property
    def processes(self) -> list[int]:
        """Pids of the live workers (for tests and diagnostics)."""
        executor = self._executor
        return list(executor._processes) if executor is not None else []  # noqa: SLF001

    def shutdown(self) -> None:
        """Stop the workers (waits for them to exit); ``get`` gives None from then on."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
