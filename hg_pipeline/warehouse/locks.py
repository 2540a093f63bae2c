"""Locks that live exactly as long as the process holding them.

Two kinds, both released by the operating system or PostgreSQL when the holder dies
(SIGKILL, machine loss), so no lock outlives its run:

* the **tenant lock**: one sync per tenant at a time, whoever launched it;
* the **run-alive lock**: held by a running sync for its whole life; a `sync_runs` row
  still `running` whose run-alive lock is free belongs to a dead process (abandoned).

PostgreSQL: session advisory locks on a dedicated connection (key = 64 bits of a SHA-256
of the name). SQLite: `flock` on a file beside the database (`<db>.locks/`).

A run-alive lock is re-entrant within a process (the CLI holds a run's alive lock and the
run's resource asks for it too: that only counts a reference). A tenant lock is not: a second
sync of the tenant in the same process waits like one in another process.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

_held: dict[tuple[str, str], list] = {}  # (database url, name) -> [handle, references]
_guard = threading.Lock()


def tenant_lock_name(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def run_alive_name(run_id: str) -> str:
    return f"run:{run_id}"


class LockBusy(Exception):
    """The lock is held by another process."""


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _lock_dir(engine: Engine) -> Path:
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        folder = Path(tempfile.gettempdir()) / "hg-pipeline-locks"
    else:
        folder = Path(f"{os.path.abspath(database)}.locks")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _lock_file(engine: Engine, name: str) -> Path:
    safe = hashlib.sha256(name.encode()).hexdigest()[:32]
    return _lock_dir(engine) / f"{name.split(':', 1)[0]}-{safe}.lock"


def _try_take(engine: Engine, name: str):
    """A handle holding `name`, or None when another process holds it."""
    if engine.dialect.name == "postgresql":
        conn = engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(name)}).scalar()
            conn.commit()
        except Exception:
            conn.close()
            raise
        if got:
            return conn
        conn.close()
        return None
    fd = os.open(_lock_file(engine, name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _release(engine: Engine, name: str, handle) -> None:
    if engine.dialect.name == "postgresql":
        try:
            handle.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(name)})
            handle.commit()
        finally:
            handle.close()  # closing the session releases it anyway
    else:
        os.close(handle)  # closing the descriptor releases the flock


def _reentrant(name: str) -> bool:
    return name.startswith("run:")


def acquire(engine: Engine, name: str, *, wait_seconds: float = 0.0, poll_seconds: float = 0.5) -> None:
    """Take `name`, waiting up to `wait_seconds`; LockBusy when another holder keeps it."""
    ident = (str(engine.url), name)
    deadline = time.monotonic() + max(0.0, wait_seconds)
    while True:
        with _guard:
            if ident in _held and _reentrant(name):
                _held[ident][1] += 1
                return
            handle = None if ident in _held else _try_take(engine, name)
            if handle is not None:
                _held[ident] = [handle, 1]
                return
        if time.monotonic() >= deadline:
            raise LockBusy(name)
        time.sleep(min(poll_seconds, max(0.01, deadline - time.monotonic())))


def release(engine: Engine, name: str) -> None:
    ident = (str(engine.url), name)
    with _guard:
        entry = _held.get(ident)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[ident]
    _release(engine, name, entry[0])


@contextmanager
def held(engine: Engine, name: str, *, wait_seconds: float = 0.0):
    acquire(engine, name, wait_seconds=wait_seconds)
    try:
        yield
    finally:
        release(engine, name)


def is_held_elsewhere(engine: Engine, name: str) -> bool:
    """True when some other process holds `name` (this process's own locks count as held)."""
    with _guard:
        if (str(engine.url), name) in _held:
            return True
    handle = _try_take(engine, name)
    if handle is None:
        return True
    _release(engine, name, handle)
    return False


def still_held(engine: Engine, name: str) -> bool:
    """True while this process holds `name`: on PostgreSQL its session must still answer (an
    outage that killed the session freed the lock even though this process lives on)."""
    with _guard:
        entry = _held.get((str(engine.url), name))
        if entry is None:
            return False
        if engine.dialect.name != "postgresql":
            return True
        try:
            entry[0].execute(text("SELECT 1"))
            entry[0].commit()
            return True
        except Exception:  # noqa: BLE001 - a dead session is the answer, not an error
            return False
