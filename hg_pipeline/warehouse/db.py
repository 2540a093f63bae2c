"""Connecting to the warehouse: PostgreSQL (schema `hg`, psycopg 3) or embedded SQLite."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

SCHEMA = "hg"
DEFAULT_SQLITE_FILE = Path(".hg") / "warehouse.db"

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


class DatabaseError(RuntimeError):
    """The warehouse cannot be reached or its URL is wrong (message has no password)."""


def default_database_url() -> str:
    return os.environ.get("HG_DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_FILE.resolve()}"


def safe_url(url: str) -> str:
    """The URL as it may be shown: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def connect(url: str | None = None) -> Engine:
    """An engine for the warehouse at `url` (cached per URL, checked once)."""
    url = url or default_database_url()
    with _lock:
        if url not in _engines:
            _engines[url] = _open(url)
        return _engines[url]


def dispose(url: str) -> None:
    """Close the pooled connections of one warehouse (before dropping its database, say)."""
    with _lock:
        engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _open(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"bad database URL {safe_url(url)!r}: expected e.g. "
                            "postgresql+psycopg://user@host:5432/db or sqlite:///path.db") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=8)
        engine = engine.execution_options(schema_translate_map={None: SCHEMA})
    elif backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        raise DatabaseError(f"unsupported database {backend!r} in {safe_url(url)}: use postgresql or sqlite")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (OperationalError, SQLAlchemyError) as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise DatabaseError(f"cannot connect to the warehouse at {safe_url(url)}: {reason}") from None
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
