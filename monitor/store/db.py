"""Engines, sessions and migrations for SQLite (WAL, the default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from monitor.ingest.storyindex import StoryIndex

# Transaction-level advisory locks (PostgreSQL) that serialise the few steps several daemons
# on one database must not run at the same moment.
LOCK_MIGRATIONS = 0x70_6D_00_01      # schema upgrades on start
LOCK_FEED_SYNC = 0x70_6D_00_02       # making the feeds table follow the config
LOCK_STORIES = 0x70_6D_00_03         # starting stories (copies of one story must join it)


def cluster_lock(conn: Connection | Session, key: int) -> None:
    """Hold advisory lock ``key`` until the transaction ends (PostgreSQL). Elsewhere a no-op:
    SQLite has one writer at a time, and one daemon per file."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    if bind.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def normalize_url(url: str) -> str:
    """Let users write ``postgresql://``; we always talk to PostgreSQL through psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def redact_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def migrations_dir() -> Path:
    """The Alembic folder: inside the installed package, or at the top of a checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("Alembic migrations not found (expected monitor/_migrations or migrations/)")


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent; run on every start)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as connection:
        cluster_lock(connection, LOCK_MIGRATIONS)   # daemons starting together upgrade once
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """An engine and a session factory; sessions are short and per unit of work."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Near-duplicate candidates: a cache of the stories table (see queries.assign_stories).
        self.stories = StoryIndex()
        # SQLite has one writer at a time: one worker thread avoids lock contention entirely.
        workers = 1 if self.engine.dialect.name == "sqlite" else 4
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="db")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def call(self, fn: Callable[Concatenate[Session, P], T], *args: P.args,
             **kwargs: P.kwargs) -> T:
        """Run ``fn(session, ...)`` in one transaction."""
        with self.session() as session:
            return fn(session, *args, **kwargs)

    async def run(self, fn: Callable[Concatenate[Session, P], T], *args: P.args,
                  **kwargs: P.kwargs) -> T:
        """``call`` on the database thread, so the event loop never waits on I/O."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self.call, fn, *args, **kwargs))

    def dispose(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
