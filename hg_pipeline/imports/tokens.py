"""Bearer tokens of the import API, one tenant each, stored hashed.

A token reads `hgi_<token_id>_<secret>`. The token id is public (listed, revoked by it); the
secret is shown once, when the token is issued, and only its SHA-256 is kept. A request's
token names its tenant: the API never takes the tenant from the URL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timezone

from sqlalchemy import Engine, insert, select, update

from hg_pipeline.imports.batches import require_import_tenant
from hg_pipeline.warehouse.tables import import_tokens
from hg_pipeline.warehouse.tenants import TenantError

PREFIX = "hgi_"
_TOKEN = re.compile(r"hgi_([0-9a-f]{12})_([A-Za-z0-9_-]{20,128})")
_UNKNOWN_HASH = hashlib.sha256(b"no such token").hexdigest()  # compared against, so unknown ids take as long


class TokenError(TenantError):
    """The tenant has no such token; the message is one line (the CLI's exit 2)."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(engine: Engine, tenant_id: str) -> str:
    """A new token of `tenant_id` (an import tenant); its text is never readable again."""
    require_import_tenant(engine, tenant_id)
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(insert(import_tokens).values(token_id=token_id, tenant_id=tenant_id, secret_hash=_digest(secret),
                                                  created_at=datetime.now(timezone.utc)))
    return f"{PREFIX}{token_id}_{secret}"


def revoke(engine: Engine, tenant_id: str, token_id: str) -> None:
    with engine.begin() as conn:
        row = conn.execute(select(import_tokens.c.revoked_at).where(
            import_tokens.c.token_id == token_id, import_tokens.c.tenant_id == tenant_id)).first()
        if row is None:
            raise TokenError(f"tenant {tenant_id} has no import API token {token_id!r} "
                             f"(see `hg-pipeline tenant tokens {tenant_id}`)")
        if row.revoked_at is None:
            conn.execute(update(import_tokens).where(import_tokens.c.token_id == token_id)
                         .values(revoked_at=datetime.now(timezone.utc)))


def tokens(engine: Engine, tenant_id: str) -> list[dict]:
    """The tenant's tokens, oldest first: id and dates, never a secret."""
    with engine.connect() as conn:
        rows = conn.execute(select(import_tokens.c.token_id, import_tokens.c.created_at, import_tokens.c.revoked_at)
                            .where(import_tokens.c.tenant_id == tenant_id)
                            .order_by(import_tokens.c.created_at, import_tokens.c.token_id)).mappings().all()
    return [dict(row) for row in rows]


def tenant_of(engine: Engine, token_text: str | None) -> str | None:
    """The tenant a live token belongs to; None for a malformed, unknown or revoked one."""
    match = _TOKEN.fullmatch(token_text or "")
    if match is None:
        return None
    token_id, secret = match.groups()
    with engine.connect() as conn:
        row = conn.execute(select(import_tokens.c.tenant_id, import_tokens.c.secret_hash, import_tokens.c.revoked_at)
                           .where(import_tokens.c.token_id == token_id)).first()
    good = hmac.compare_digest(_digest(secret), row.secret_hash if row else _UNKNOWN_HASH)
    if row is None or not good or row.revoked_at is not None:
        return None
    return row.tenant_id
