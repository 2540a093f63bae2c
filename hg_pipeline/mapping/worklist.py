"""What an MSP still has to decide: every type and category of its PSA, the records behind
each, and which of them no rule of a mapping document covers. Pure, no I/O.

A *choice* is one key a mapping document can give a rule to: a company type
(`companies.types`), a contact type (`contacts.types`), a product category or
"Category/Subcategory" (`products.categories`). Records without a type are the choice
"(no type)" (the engine applies that key's rule to them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hg_pipeline.mapping.document import MappingDocument
from hg_pipeline.mapping.engine import NO_TYPE

COMPANY_TYPES, CONTACT_TYPES, PRODUCT_CATEGORIES = "company_types", "contact_types", "product_categories"
CHOICE_KINDS = (COMPANY_TYPES, CONTACT_TYPES, PRODUCT_CATEGORIES)
# kind -> (the choices, one choice, the records behind it)
KIND_WORDS = {
    COMPANY_TYPES: ("company types", "company type", "companies"),
    CONTACT_TYPES: ("contact types", "contact type", "contacts"),
    PRODUCT_CATEGORIES: ("product categories", "product category", "products"),
}


@dataclass(frozen=True)
class Choice:
    kind: str  # company_types | contact_types | product_categories
    name: str  # the PSA type name, "Category" or "Category/Subcategory"
    records: int  # the companies, contacts or products behind it

    @property
    def is_subcategory(self) -> bool:
        return self.kind == PRODUCT_CATEGORIES and "/" in self.name


def psa_choices(reference: Mapping[str, Sequence[dict]], records: Mapping[str, Sequence[dict]]) -> list[Choice]:
    """Every choice of the PSA with its record count, in the order people read them.

    `reference`: the normalized reference lists (company_types, contact_types,
    product_categories); every entry is a choice, with 0 records if none carries it.
    `records`: normalized companies, contacts and products. A type or category met only on a
    record is a choice too; "(no type)" is one when some record has no type. A company of two
    types counts for both; a category counts the products of its subcategories as well.
    Companies deleted in the PSA are left out: the engine ignores them whatever the rules.
    Types come most records first; categories in tree order (a category, then its subcategories).
    """
    company_counts = _type_counts(c for c in records.get("companies", ()) if not c.get("deleted"))
    contact_counts = _type_counts(records.get("contacts", ()))
    category_counts: Counter[str] = Counter()
    for product in records.get("products", ()):
        category, subcategory = _text(product.get("category")), _text(product.get("subcategory"))
        if category is None:
            continue
        category_counts[category] += 1
        if subcategory is not None:
            category_counts[f"{category}/{subcategory}"] += 1

    def names(kind: str, field_name: str) -> list[str]:
        return [name for r in reference.get(kind, ()) if (name := _text(r.get(field_name))) is not None]

    choices = _types(COMPANY_TYPES, names(COMPANY_TYPES, "name"), company_counts)
    choices += _types(CONTACT_TYPES, names(CONTACT_TYPES, "name"), contact_counts)
    paths = {*names(PRODUCT_CATEGORIES, "path"), *category_counts}
    choices += [Choice(PRODUCT_CATEGORIES, path, category_counts[path]) for path in sorted(paths, key=_tree_order)]
    return choices


def _type_counts(records: Iterable[dict]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for record in records:
        types = {name for name in map(_text, record.get("types") or ()) if name is not None}
        counts.update(types or (NO_TYPE,))
    return counts


def _types(kind: str, listed: list[str], counts: Counter[str]) -> list[Choice]:
    names = {*listed, *counts}
    ordered = sorted(names, key=lambda name: (name == NO_TYPE, -counts[name], name.casefold(), name))
    return [Choice(kind, name, counts[name]) for name in ordered]


def _tree_order(path: str) -> tuple[str, ...]:
    return tuple(part.casefold() for part in path.split("/"))


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def is_covered(document: MappingDocument, choice: Choice) -> bool:
    """True when a rule of `document` decides the records behind `choice`.

    - a company or contact type: a rule for that type (contacts disabled cover every contact type);
    - a category: a rule for it; a subcategory: a rule for it or for its category;
    - products.auto_import_new_categories imports every category: all covered;
    - products.mode by_product switches category rules off: products are decided one by one
      (`products.records`), so no category waits for a rule.
    """
    if choice.kind == COMPANY_TYPES:
        return choice.name in document.companies.types
    if choice.kind == CONTACT_TYPES:
        return not document.contacts.enabled or choice.name in document.contacts.types
    products = document.products
    if products.auto_import_new_categories or products.mode != "by_category":
        return True
    category = choice.name.split("/", 1)[0]
    return choice.name in products.categories or category in products.categories


@dataclass(frozen=True)
class Worklist:
    """What waits for a decision under one mapping document."""

    choices: tuple[Choice, ...]  # every choice of the PSA
    unmapped: tuple[Choice, ...]  # the choices no rule covers
    pending: dict[str, dict[str, int]] = field(default_factory=dict)  # entity -> group -> pending records

    @property
    def records_waiting(self) -> int:
        return sum(sum(groups.values()) for groups in self.pending.values())

    def unmapped_of(self, kind: str) -> list[Choice]:
        return [choice for choice in self.unmapped if choice.kind == kind]

    def waiting(self) -> str:
        return waiting_phrase(len(self.unmapped), self.records_waiting)


def build_worklist(document: MappingDocument, choices: Sequence[Choice],
                   pending: Mapping[str, Mapping[str, int]]) -> Worklist:
    """`pending`: entity -> group -> number of pending decisions (from the engine)."""
    return Worklist(
        choices=tuple(choices),
        unmapped=tuple(choice for choice in choices if not is_covered(document, choice)),
        pending={entity: dict(groups) for entity, groups in pending.items() if groups},
    )


def waiting_phrase(types: int, records: int) -> str:
    """"12 types and categories and 430 records wait for a decision"; "nothing waits..." at 0."""
    if not types and not records:
        return "nothing waits for a decision"
    parts = []
    if types:
        parts.append(f"{types:,} type{' or category' if types == 1 else 's and categories'}")
    if records:
        parts.append(f"{records:,} record{'' if records == 1 else 's'}")
    verb = "waits" if len(parts) == 1 and (types or records) == 1 else "wait"
    return f"{' and '.join(parts)} {verb} for a decision"


def unmapped_table(worklist: Worklist) -> str:
    """A markdown table of the choices no rule covers, with their record counts."""
    if not worklist.unmapped:
        return "_every type and category has a rule_"
    lines = ["| kind | type or category | records |", "|---|---|---:|"]
    for choice in worklist.unmapped:
        _, kind, noun = KIND_WORDS[choice.kind]
        name = choice.name.replace("|", "\\|")
        lines.append(f"| {kind} | {name} | {choice.records:,} {noun} |")
    return "\n".join(lines) + "\n"
