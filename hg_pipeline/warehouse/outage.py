"""A warehouse that stops answering (server down, connections killed, network cut): how to tell
it from other errors and say it in one line.

Every write of a sync is a transaction (staging per entity, a load per entity, the sync_runs
row), so an outage rolls back what was in flight and leaves the rest as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError, PendingRollbackError

from hg_pipeline import secrets
from hg_pipeline.warehouse.db import DatabaseError, safe_url

# Errors that mean "no usable connection", whichever layer raised them (SQLAlchemy wraps the
# driver's errors; COPY goes through the driver's own connection and raises them raw).
_UNREACHABLE = (OperationalError, InterfaceError, DisconnectionError, PendingRollbackError, DatabaseError,
                psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError)
_DATABASE = (*_UNREACHABLE, DBAPIError, psycopg.Error, sqlite3.Error)


class WarehouseUnreachable(RuntimeError):
    """The warehouse stopped answering during a sync; the message is one line, no secret."""


def is_unreachable(exc: BaseException) -> bool:
    return isinstance(exc, _UNREACHABLE)


def is_warehouse_error(exc: BaseException) -> bool:
    return isinstance(exc, _DATABASE)


def reason(exc: BaseException) -> str:
    """The driver's own first line (SQLAlchemy's wrapper adds the statement and a link)."""
    inner = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return lines[0] if lines else type(inner).__name__


def where(engine_or_url: Engine | str) -> str:
    """The warehouse as it may be shown: its URL without the password."""
    if isinstance(engine_or_url, Engine):
        return engine_or_url.url.render_as_string(hide_password=True)
    return safe_url(engine_or_url)


def describe(exc: BaseException, engine_or_url: Engine | str) -> str:
    """'the warehouse at URL is unreachable: REASON' (or '... failed: REASON' for an error
    that is not about the connection)."""
    if isinstance(exc, DatabaseError):  # raised when connecting: it already names the warehouse
        return str(exc)
    state = "is unreachable" if is_unreachable(exc) else "failed"
    return f"the warehouse at {where(engine_or_url)} {state}: {reason(exc)}"


@contextmanager
def reported(tenant_id: str, database_url: str, consequence: str) -> Iterator[None]:
    """A warehouse error inside leaves as `WarehouseUnreachable`: 'tenant T: the warehouse at
    URL is unreachable: REASON; CONSEQUENCE'."""
    try:
        yield
    except Exception as exc:
        if not is_warehouse_error(exc):
            raise
        raise WarehouseUnreachable(
            secrets.scrub(f"tenant {tenant_id}: {describe(exc, database_url)}; {consequence}")) from None
