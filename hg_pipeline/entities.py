"""What the pipeline syncs, described as data.

Connectors turn a vendor payload into a *normalized record*: a plain dict whose keys
are listed in `NORMALIZED_FIELDS` (always with `psa_id` as a string). Everything after
extraction (mapping, checks, load) works on normalized records only, so a new PSA
needs a connector and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

# Reference data pulled by the initial sync so that the MSP can map.
REFERENCE_ENTITIES = ("company_types", "contact_types", "product_categories")

# Entities that are mapped and loaded into the warehouse, in load order
# (contacts and assets point at companies).
LOADED_ENTITIES = ("companies", "contacts", "products", "members", "assets")

ALL_ENTITIES = REFERENCE_ENTITIES + LOADED_ENTITIES

# What each map stage reads besides its own staged records: the companies' decisions.
MAP_INPUTS = {"contacts": "companies", "assets": "companies"}

# Spend lines are staged like the others, then derived into `spend` through the loaded
# companies and products (orchestration/spend_assets.py), not mapped by the mapping engine.
DERIVED_ENTITIES = ("spend",)

# Every entity an extract stage stages, in pipeline order.
STAGED_ENTITIES = ALL_ENTITIES + DERIVED_ENTITIES

NORMALIZED_FIELDS: dict[str, tuple[str, ...]] = {
    "company_types": ("psa_id", "name"),
    "contact_types": ("psa_id", "name"),
    # Categories and subcategories in one list; a subcategory has `parent_psa_id`
    # and `path` "Category/Subcategory", a category has `path` "Category".
    "product_categories": ("psa_id", "name", "parent_psa_id", "path"),
    # `types`: PSA company type names, in PSA order (ConnectWise allows several).
    "companies": ("psa_id", "name", "identifier", "types", "status", "deleted"),
    "contacts": ("psa_id", "company_psa_id", "first_name", "last_name", "email", "types", "inactive"),
    # `sku` is the PSA identifier; mapping `records` accept it as well as psa_id.
    "products": (
        "psa_id", "sku", "name", "category", "subcategory", "price", "cost",
        "product_class", "inactive",
    ),
    "members": ("psa_id", "identifier", "first_name", "last_name", "name", "email", "inactive"),
    "assets": ("psa_id", "company_psa_id", "name", "asset_type", "serial_number", "active"),
    # What a client paid in a month (staged by the import source; `amount` as exact decimal text).
    "spend": ("psa_id", "company_psa_id", "product_psa_id", "category", "month", "amount", "currency",
              "description"),
}

HG_COMPANY_TYPES = ("client", "prospect", "supplier", "manufacturer")

# Words each PSA uses for the same thing; shown in messages and the UI.
VENDOR_TERMS = {
    "connectwise": {"members": "members", "assets": "configurations", "products": "catalog items"},
    "halopsa": {"members": "agents", "assets": "assets", "products": "items"},
    "autotask": {"members": "resources", "assets": "configuration items", "products": "products"},
}


@dataclass(frozen=True)
class EntityLoad:
    """How a mapped entity lands in its warehouse table."""

    table: str
    columns: tuple[str, ...]  # mapped columns besides tenant_id and the bookkeeping ones


ENTITY_LOADS: dict[str, EntityLoad] = {
    "companies": EntityLoad("companies", ("id", "psa_id", "name", "psa_name", "hg_type", "psa_type")),
    "contacts": EntityLoad(
        "contacts",
        ("id", "psa_id", "company_id", "first_name", "last_name", "email", "contact_type", "invite_status"),
    ),
    "products": EntityLoad(
        "products", ("id", "psa_id", "sku", "name", "category_id", "mapping_source", "price", "cost"),
    ),
    "members": EntityLoad("members", ("id", "psa_id", "name", "email", "invite_status")),
    "assets": EntityLoad("assets", ("id", "psa_id", "company_id", "name", "asset_type", "serial_number")),
}
