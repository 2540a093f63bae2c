"""Tenants (contract section 1): one MSP connected to one source system."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from hg_pipeline.connectors.origin import BaseUrlError, check_base_url
from hg_pipeline.connectors.registry import SOURCES, every_credential_key
from hg_pipeline.warehouse.tables import tenants

TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class TenantError(ValueError):
    """Bad tenant input or an unknown tenant; the message names the field."""


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    source: str
    base_url: str | None
    credentials: dict[str, str] = field(default_factory=dict)  # KEY -> "env:VAR" references
    notify_email: str | None = None
    requests_per_second: float | None = None  # what its PSA instance allows; None: the source's default


def validate(tenant: Tenant) -> None:
    if not TENANT_ID.fullmatch(tenant.tenant_id):
        raise TenantError(f"tenant id {tenant.tenant_id!r} must match [a-z0-9][a-z0-9_-]{{0,62}}")
    if tenant.source not in SOURCES:
        raise TenantError(f"source {tenant.source!r} is not one of {', '.join(SOURCES)}")
    if tenant.source != "import" or tenant.base_url:
        try:  # http(s), a host, a valid port, no control characters, no user:password, no metadata/link-local
            check_base_url(tenant.base_url)
        except BaseUrlError as exc:
            raise TenantError(str(exc)) from None
    spec = SOURCES[tenant.source]
    required = spec.required_keys
    for key, ref in tenant.credentials.items():
        if key not in spec.credential_keys:  # a key of no source may be a pasted value: not shown
            named = f"credential {key}" if key in every_credential_key() else "a credential key"
            raise TenantError(f"{named} is not used by {tenant.source} (expected {', '.join(required)})")
        if not re.fullmatch(r"env:[A-Za-z_][A-Za-z0-9_]*", str(ref)):
            raise TenantError(f"credential {key} must be a reference like env:VAR, not a value")
    missing = [key for key in required if key not in tenant.credentials]
    if missing:
        raise TenantError(f"missing credential(s) {', '.join(missing)} for source {tenant.source}")
    rate = tenant.requests_per_second
    if rate is not None and not (0 < rate <= 1000):
        raise TenantError(f"requests-per-second {rate:g} must be above 0 and at most 1000")
    if tenant.notify_email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+|[^@\s]+@localhost", tenant.notify_email):
        raise TenantError(f"notify-email {tenant.notify_email!r} is not an e-mail address")


def add_tenant(engine: Engine, tenant: Tenant) -> None:
    validate(tenant)
    row = {
        "tenant_id": tenant.tenant_id,
        "name": tenant.name,
        "source": tenant.source,
        "base_url": tenant.base_url,
        "credentials": json.dumps(tenant.credentials, sort_keys=True),
        "notify_email": tenant.notify_email,
        "requests_per_second": tenant.requests_per_second,
        "created_at": datetime.now(timezone.utc),
    }
    try:
        with engine.begin() as conn:
            conn.execute(tenants.insert(), row)
    except IntegrityError:
        raise TenantError(f"tenant {tenant.tenant_id!r} already exists") from None


def get_tenant(engine: Engine, tenant_id: str) -> Tenant:
    with engine.connect() as conn:
        row = conn.execute(select(tenants).where(tenants.c.tenant_id == tenant_id)).mappings().first()
    if row is None:
        raise TenantError(f"unknown tenant {tenant_id!r} (see `hg-pipeline tenant list`)")
    return _tenant(row)


def list_tenants(engine: Engine) -> list[Tenant]:
    with engine.connect() as conn:
        rows = conn.execute(select(tenants).order_by(tenants.c.tenant_id)).mappings().all()
    return [_tenant(row) for row in rows]


def _tenant(row) -> Tenant:
    return Tenant(
        tenant_id=row["tenant_id"],
        name=row["name"],
        source=row["source"],
        base_url=row["base_url"],
        credentials=json.loads(row["credentials"] or "{}"),
        notify_email=row["notify_email"],
        requests_per_second=row["requests_per_second"],
    )
