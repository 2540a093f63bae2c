"""An import record (typed by `validate.check`) -> the normalized record every source gives
the extract stage (`entities.NORMALIZED_FIELDS`), and the reference lists derived from records:
types and categories come from the files themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from hg_pipeline.connectors.records import check_record

# The reference entity each import entity carries, and the field it is read from.
REFERENCES = {"companies": ("company_types", "type"), "contacts": ("contact_types", "type"),
              "products": ("product_categories", "category")}


def normalize(entity: str, record: Mapping) -> dict:
    """The normalized record (RecordError when it cannot be stored)."""
    build = _BUILDERS[entity]
    what = f"spend line {record_key(entity, record)}" if entity == "spend" else f"{entity[:-1]} {record['id']}"
    return check_record(entity, build(record), what)


def normalize_checked(entity: str, record: Mapping) -> dict:
    """The normalized record of a record `validate.check` accepted (which normalized it once
    already: its text is clean and fits)."""
    return _BUILDERS[entity](record)


def reference_records(entity: str, names: Iterable[str]) -> list[dict]:
    """The normalized type or category records of the names `entity`'s records use: a type is
    known by its name, a category by its path ("Hardware", "Hardware/Laptops")."""
    if entity != "product_categories":
        return [{"psa_id": name, "name": name} for name in sorted(set(names))]
    paths = set()
    for path in names:
        paths.add(path.split("/")[0])
        paths.add(path)
    out = []
    for path in sorted(paths):
        parent, _, name = path.rpartition("/")
        out.append({"psa_id": path, "name": name, "parent_psa_id": parent or None, "path": path})
    return out


def _company(r: Mapping) -> dict:
    return {"psa_id": r["id"], "name": r["name"], "identifier": r.get("identifier"),
            "types": [r["type"]] if r.get("type") else [], "status": r.get("status"), "deleted": False}


def _contact(r: Mapping) -> dict:
    return {"psa_id": r["id"], "company_psa_id": r.get("company_id"), "first_name": r.get("first_name"),
            "last_name": r.get("last_name"), "email": r.get("email"),
            "types": [r["type"]] if r.get("type") else [], "inactive": bool(r.get("inactive", False))}


def _product(r: Mapping) -> dict:
    category, _, subcategory = (r.get("category") or "").partition("/")
    return {"psa_id": r["id"], "sku": r.get("sku"), "name": r["name"], "category": category or None,
            "subcategory": subcategory or None, "price": _number(r.get("price")), "cost": _number(r.get("cost")),
            "product_class": r.get("product_class"), "inactive": bool(r.get("inactive", False))}


def _member(r: Mapping) -> dict:
    first, last = r.get("first_name"), r.get("last_name")
    name = r.get("name") or " ".join(part for part in (first, last) if part)
    return {"psa_id": r["id"], "identifier": r.get("identifier"), "first_name": first, "last_name": last,
            "name": name, "email": r.get("email"), "inactive": bool(r.get("inactive", False))}


def _asset(r: Mapping) -> dict:
    return {"psa_id": r["id"], "company_psa_id": r.get("company_id"), "name": r["name"],
            "asset_type": r.get("asset_type"), "serial_number": r.get("serial_number"),
            "active": r.get("active", True)}


def record_key(entity: str, record: Mapping) -> str:
    """The id a record is staged under: its `id`; a spend line without one is known by its
    company, product (or category), month and currency."""
    if record.get("id"):
        return record["id"]
    key = "|".join(str(record.get(name) or "") for name in ("company_id", "product_id", "category", "month",
                                                             "currency"))
    if len(key) <= 64:
        return key
    return "spend-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def _spend(r: Mapping) -> dict:
    return {"psa_id": record_key("spend", r), "company_psa_id": r["company_id"], "product_psa_id": r.get("product_id"),
            "category": r.get("category"), "month": r["month"], "amount": r["amount"], "currency": r["currency"],
            "description": r.get("description")}


def _number(value: str | None) -> float | None:
    return None if value is None else float(value)


_BUILDERS = {"companies": _company, "contacts": _contact, "products": _product, "members": _member,
             "assets": _asset, "spend": _spend}
