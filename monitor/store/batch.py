"""Many small writes of one kind, grouped into one transaction.

Thousands of feeds answering "not modified" each want one row updated; one transaction
per row costs more CPU than the HTTP request did. Callers ``await add(row)`` and return
once their row is committed (or with the error that stopped the batch), so nothing is
acknowledged before it is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from monitor.store.db import Database

T = TypeVar("T")


class WriteBatch(Generic[T]):
    def __init__(self, db: Database, write: Callable[[Session, Sequence[T]], object], *,
                 gather_seconds: float = 0.02, size: int = 500) -> None:
        self._db = db
        self._write = write
        self._gather = gather_seconds
        self._size = size
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def add(self, row: T) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="write-batch")
        await future

    async def _flush(self) -> None:
        await asyncio.sleep(self._gather)        # let the rows of one moment gather
        while self._pending:
            batch, self._pending = self._pending[:self._size], self._pending[self._size:]
            try:
                await self._db.run(self._write, [row for row, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
