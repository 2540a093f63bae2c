"""HighGround record ids.

Ids are derived from what identifies a record, so that every stage (and a remap)
computes the same id without asking the database: a contact can name its company's
id before the company is loaded, and a second sync finds the same rows.
"""

from __future__ import annotations

import hashlib
import uuid

_NAMESPACE = uuid.UUID("6f1c8f0e-4d0b-4c38-9a57-8f6c1d2f7a10")
_NAMESPACE_BYTES = _NAMESPACE.bytes


def record_id(tenant_id: str, entity: str, psa_id: str) -> str:
    """Id of a record imported from the PSA (`entity` is e.g. "companies").

    Equal to `str(uuid.uuid5(_NAMESPACE, ...))`, computed without building UUID objects:
    it runs for every record of every sync.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{tenant_id}|{entity}|{psa_id}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def category_id(path: str, tenant_id: str | None = None) -> str:
    """Id of a category path "Category" or "Category/Subcategory".

    Global (HighGround) categories have no tenant; a tenant's custom categories do,
    so two tenants creating "Software/Custom" get two different rows.
    """
    return str(uuid.uuid5(_NAMESPACE, f"{tenant_id or ''}|category|{path}"))
