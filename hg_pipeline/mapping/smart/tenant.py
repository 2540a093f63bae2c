"""A tenant's smart-mapping model: the labelled set plus the tenant's own confirmed mappings.

Confirmed mappings are the products the tenant's mapping document maps itself: a product
record rule `{action: map, to: path}` (by PSA id or SKU), and a category rule `map` for the
products filed under that PSA category. They weigh more than the labelled set, so a new
mapping version changes the next suggestion for similar names. Only paths of the tenant's tree
(global + custom) are learnt, so every suggestion is a path the engine can load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hg_pipeline.mapping.categories import CategoryTree
from hg_pipeline.mapping.document import MappingDocument
from hg_pipeline.mapping.smart.evaluate import labelled_calibrator
from hg_pipeline.mapping.smart.features import words
from hg_pipeline.mapping.smart.labelled import labelled_examples
from hg_pipeline.mapping.smart.model import Example, SmartModel

TENANT_WEIGHT = 3.0  # a confirmed mapping of the tenant counts as three labelled rows
MAX_PER_PATH = 40  # confirmed examples per path: keeps training time bounded (a category rule may cover thousands)
MAX_CONFIRMED = 1200


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def confirmed_examples(document: MappingDocument, products: Sequence[dict]) -> list[Example]:
    """The tenant's products its document maps to a path itself (record rule, else category
    rule), at most MAX_PER_PATH per path and one per name, spread over the input."""
    section = document.products
    by_path: dict[str, list[dict]] = {}
    for record in products:
        psa_id, sku = str(record.get("psa_id")), _text(record.get("sku"))
        rule = section.records.get(psa_id) or (section.records.get(sku) if sku else None)
        path = None
        if rule is not None:
            path = rule.to if rule.action == "map" else None
        elif psa_id not in section.distributions and (sku is None or sku not in section.distributions):
            cat, sub = _text(record.get("category")), _text(record.get("subcategory"))
            if cat is not None and section.mode == "by_category":
                found = section.categories.get(f"{cat}/{sub}") if sub else None
                found = found or section.categories.get(cat)
                path = found.to if found is not None and found.action == "map" else None
        if path is not None:
            by_path.setdefault(path, []).append(record)
    examples: list[Example] = []
    for path, records in by_path.items():
        seen: set[str] = set()
        step = max(1, len(records) // (MAX_PER_PATH * 4))  # look at a spread, not only the first ones
        for record in records[::step] if step > 1 else records:
            key = " ".join(words(record.get("name")))
            if key in seen:
                continue
            seen.add(key)
            examples.append(Example(record, path, TENANT_WEIGHT))
            if len(seen) >= MAX_PER_PATH:
                break
    return examples[:MAX_CONFIRMED]


def tenant_model(document: MappingDocument, products: Sequence[dict], tree: CategoryTree) -> SmartModel:
    """The model for one tenant: labelled set + confirmed mappings, only paths of `tree`."""
    examples = [e for e in (*labelled_examples(), *confirmed_examples(document, products)) if e.path in tree]
    return SmartModel.train(examples, labelled_calibrator())


def tenant_suggester(document: MappingDocument, products: Sequence[dict],
                     tree: CategoryTree) -> Callable[[dict], tuple[str, float] | None]:
    """The engine's MappingContext.suggest for one map stage (trained once, here)."""
    return tenant_model(document, products, tree).suggest
