"""The import record format, entity by entity, as data; the JSON Schemas are derived from it.

One record is a flat object: CSV columns, or the keys of a JSON object. The same fields, the
same checks (`validate.py`) for a CSV file, a JSON file and a POST to the import API. Text
limits are those of the warehouse columns a value ends up in (`connectors/records.py`), so a
record that passes here is never refused later for its length.

`python -m hg_pipeline.imports.formats` rewrites `schemas/<entity>.schema.json` from these
tables (a test keeps them equal).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hg_pipeline.connectors.records import ID_LENGTH, LIMITS

SCHEMA_DIR = Path(__file__).with_name("schemas")
SCHEMA_BASE = "https://highground.io/schemas/import"

# Kinds of value: what each accepts is described in `KIND_SCHEMA` and checked in validate.py.
ID, TEXT, EMAIL, BOOLEAN, DECIMAL, MONTH, CURRENCY, PATH = (
    "id", "text", "email", "boolean", "decimal", "month", "currency", "path")

MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
CURRENCY_PATTERN = r"^[A-Za-z]{3}$"
PATH_PATTERN = r"^[^/]+(/[^/]+)?$"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    description: str
    required: bool = False
    max_length: int | None = None


@dataclass(frozen=True)
class Format:
    entity: str
    description: str
    fields: tuple[Field, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    def field(self, name: str) -> Field | None:
        return self.by_name.get(name)


def _limit(entity: str, field: str) -> int:
    return LIMITS[entity][field][0]


def _id(description: str, required: bool = True) -> Field:
    return Field("id", ID, description, required=required, max_length=ID_LENGTH)


def _ref(name: str, description: str, required: bool = False) -> Field:
    return Field(name, ID, description, required=required, max_length=ID_LENGTH)


FORMATS: dict[str, Format] = {f.entity: f for f in (
    Format("companies", "The MSP's clients, prospects, suppliers and manufacturers.", (
        _id("The company's id in your system; unique among companies."),
        Field("name", TEXT, "Company name.", required=True, max_length=_limit("companies", "name")),
        Field("type", TEXT, "Your word for its type (e.g. Customer, Prospect, Vendor); mapped to a HighGround "
              "type by the mapping's companies.types.", max_length=_limit("companies", "types")),
        Field("identifier", TEXT, "A short code for the company.", max_length=64),
        Field("status", TEXT, "Your status of the company (e.g. Active).", max_length=64),
    )),
    Format("contacts", "People at the MSP's companies (soft-imported, never invited).", (
        _id("The contact's id; unique among contacts."),
        _ref("company_id", "The id of the contact's company (as in companies)."),
        Field("first_name", TEXT, "First name (first_name or last_name is required).",
              max_length=_limit("contacts", "first_name")),
        Field("last_name", TEXT, "Last name.", max_length=_limit("contacts", "last_name")),
        Field("email", EMAIL, "E-mail address.", max_length=_limit("contacts", "email")),
        Field("type", TEXT, "Your word for the contact's type (e.g. Billing); mapped by contacts.types.",
              max_length=_limit("contacts", "types")),
        Field("inactive", BOOLEAN, "true when the contact no longer works there."),
    )),
    Format("products", "What the MSP sells: hardware, licences, services, bundles.", (
        _id("The product's id; unique among products."),
        Field("name", TEXT, "Product name or description.", required=True, max_length=_limit("products", "name")),
        Field("sku", TEXT, "SKU or product code; mapping records accept it as well as the id.",
              max_length=_limit("products", "sku")),
        Field("category", PATH, "Your category, as \"Category\" or \"Category/Subcategory\"; mapped by "
              "products.categories.", max_length=ID_LENGTH),
        Field("price", DECIMAL, "Unit price."),
        Field("cost", DECIMAL, "Unit cost."),
        Field("product_class", TEXT, "Kind of product (e.g. Service, Agreement, NonInventory).", max_length=64),
        Field("inactive", BOOLEAN, "true when the product is no longer sold."),
    )),
    Format("members", "The MSP's own staff (ConnectWise members, HaloPSA agents, Autotask resources).", (
        _id("The member's id; unique among members."),
        Field("name", TEXT, "Full name (else first_name and last_name; one of them is required).",
              max_length=_limit("members", "name")),
        Field("first_name", TEXT, "First name.", max_length=_limit("members", "name")),
        Field("last_name", TEXT, "Last name.", max_length=_limit("members", "name")),
        Field("email", EMAIL, "E-mail address.", max_length=_limit("members", "email")),
        Field("identifier", TEXT, "Login or short name.", max_length=64),
        Field("inactive", BOOLEAN, "true when the person has left."),
    )),
    Format("assets", "Devices and configurations at the MSP's companies.", (
        _id("The asset's id; unique among assets."),
        _ref("company_id", "The id of the company the asset belongs to."),
        Field("name", TEXT, "Asset name.", required=True, max_length=_limit("assets", "name")),
        Field("asset_type", TEXT, "Kind of asset (e.g. Laptop, Firewall).", max_length=_limit("assets", "asset_type")),
        Field("serial_number", TEXT, "Serial number.", max_length=_limit("assets", "serial_number")),
        Field("active", BOOLEAN, "false when the asset is retired (default true)."),
    )),
    Format("spend", "What a client paid for in a month: one line per company, product and month.", (
        _id("The line's id; optional: without one, company_id, product_id, month and currency identify it "
            "(two lines with the same four are refused: give them ids or add them up).", required=False),
        _ref("company_id", "The id of the company that paid (as in companies).", required=True),
        _ref("product_id", "The id of the product paid for (as in products); its mapping gives the category."),
        Field("category", PATH, "The category of a line without a product, as \"Category\" or "
              "\"Category/Subcategory\".", max_length=ID_LENGTH),
        Field("month", MONTH, "The month, as YYYY-MM.", required=True),
        Field("amount", DECIMAL, "The amount in the currency, e.g. 1250.00 (negative for a credit).", required=True),
        Field("currency", CURRENCY, "ISO 4217 code, e.g. USD.", required=True),
        Field("description", TEXT, "What the line is, as on the invoice.", max_length=255),
    )),
)}

IMPORT_ENTITIES = tuple(FORMATS)

KIND_SCHEMA: dict[str, dict] = {
    ID: {"type": ["string", "integer"], "pattern": r"^\S(.*\S)?$", "minLength": 1},
    TEXT: {"type": ["string", "null"]},
    EMAIL: {"type": ["string", "null"], "format": "email"},
    BOOLEAN: {"type": ["boolean", "null"]},
    DECIMAL: {"type": ["number", "string"], "pattern": DECIMAL_PATTERN},
    MONTH: {"type": "string", "pattern": MONTH_PATTERN},
    CURRENCY: {"type": "string", "pattern": CURRENCY_PATTERN},
    PATH: {"type": ["string", "null"], "pattern": PATH_PATTERN},
}


def format_of(entity: str) -> Format:
    try:
        return FORMATS[entity]
    except KeyError:
        raise ValueError(f"{entity!r} is not an import entity; expected one of {', '.join(IMPORT_ENTITIES)}") from None


def json_schema(entity: str) -> dict:
    """The JSON Schema (draft 2020-12) of one record of `entity`."""
    fmt = format_of(entity)
    properties = {}
    for f in fmt.fields:
        prop = {"description": f.description, **KIND_SCHEMA[f.kind]}
        if f.kind == DECIMAL and not f.required:
            prop["type"] = [*prop["type"], "null"]
        if f.max_length is not None:
            prop["maxLength"] = f.max_length
        properties[f.name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}/{entity}.schema.json",
        "title": f"HighGround import: one record of {entity}",
        "description": fmt.description,
        "type": "object",
        "properties": properties,
        "required": [f.name for f in fmt.fields if f.required],
        "additionalProperties": False,
    }


def schema_text(entity: str) -> str:
    return json.dumps(json_schema(entity), indent=2, ensure_ascii=False) + "\n"


def write_schemas() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for entity in IMPORT_ENTITIES:
        (SCHEMA_DIR / f"{entity}.schema.json").write_text(schema_text(entity), encoding="utf-8")


if __name__ == "__main__":
    write_schemas()
