"""HighGround record ids.

Ids are derived from what identifies a record, so that every stage (and a remap)
computes the same id without asking the database: a contact can name its company's
id before the company is loaded, and a second sync finds the same rows.
"""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1c8f0e-4d0b-4c38-9a57-8f6c1d2f7a10")


def record_id(tenant_id: str, entity: str, psa_id: str) -> str:
    """Id of a record imported from the PSA (`entity` is e.g. "companies")."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant_id}|{entity}|{psa_id}"))


def category_id(path: str, tenant_id: str | None = None) -> str:
    """Id of a category path "Category" or "Category/Subcategory".

    Global (HighGround) categories have no tenant; a tenant's custom categories do,
    so two tenants creating "Software/Custom" get two different rows.
    """
    return str(uuid.uuid5(_NAMESPACE, f"{tenant_id or ''}|category|{path}"))
