"""What a connector learns about a PSA instance before it reads records, kept for the process.

A sync builds one connector per entity; without this, each would look up ConnectWise's
codebase, the Autotask zone or a HaloPSA token again: 8 requests a sync taken from the rate
budget (at HaloPSA's 0.9 requests/s, 9 seconds). Keys name the instance and a digest of the
credentials, never the credentials themselves; a value is kept for `ttl` seconds, and a
connector that finds it wrong (a 401) forgets it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
DISCOVERY_TTL = 3600.0

_lock = threading.Lock()
_learned: dict[str, tuple[float, object]] = {}


def key(*parts: object) -> str:
    """A cache key for these parts (an origin, a user, a secret...), as a digest."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def remembered(name: str, learn: Callable[[], T], ttl: float = DISCOVERY_TTL) -> T:
    """The value last learned under `name` if younger than `ttl`, else `learn()` (kept when it
    returns; an exception keeps nothing)."""
    now = time.monotonic()
    with _lock:
        hit = _learned.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]  # type: ignore[return-value]
    value = learn()
    with _lock:
        _learned[name] = (now + ttl, value)
    return value


def forget(name: str) -> None:
    with _lock:
        _learned.pop(name, None)


def forget_everything() -> None:
    """Forget every instance (a new process's view: what a test that counts discovery
    requests starts from, since a loopback port can be reused by the next simulator)."""
    with _lock:
        _learned.clear()
