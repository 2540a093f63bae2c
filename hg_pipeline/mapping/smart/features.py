"""A product record -> weighted text features (words, character n-grams, PSA category, SKU).

Product names are short and full of vendor shorthand ("M365 BP", "S1 Control", "FG-60F"), so
character n-grams of each word carry most of the signal; whole words and word pairs add the
exact terms. Words joined in CamelCase or across a letter/digit boundary also count as their
parts ("FortiGate" -> fortigate, forti, gate; "60F" -> 60f, 60, f). Each field gets its own
feature prefix and weight: the name speaks loudest, the SKU and the PSA category help, the
product class barely. The Vectorizer turns the features into TF-IDF rows (L2-normalized, IDF
squared) over the vocabulary of the rows it was fitted on.

`tree_glosses` reads the category tree's own words (each subcategory's name and the gloss
comment of categories.yaml, "laptops, desktops, monitors"): the model learns them as extra
examples, the product contract rather than labelled rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from hg_pipeline.mapping.categories import CATEGORIES_FILE

_NON_WORD = re.compile(r"[^a-z0-9+#]+")
_RAW_WORD = re.compile(r"[^A-Za-z0-9+#]+")
_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")  # CamelCase and letter/digit parts of a word

# field -> weight of its features (chosen by cross-validation, see docs/decisions.md)
NAME_WEIGHT, DESCRIPTION_WEIGHT, SKU_WEIGHT, CATEGORY_WEIGHT, CLASS_WEIGHT, VENDOR_WEIGHT = 1.0, 0.5, 0.4, 2.0, 0.2, 0.5
WORD_WEIGHT, PAIR_WEIGHT, NGRAM_WEIGHT = 2.0, 0.5, 0.5  # within a text field (cross-validated, see docs/decisions.md)
NGRAM_SIZES = (3, 4)
IDF_POWER = 2.0  # rare features (a product line's own words) weigh more (cross-validated: 1 -> 2 = +0.6 points)

FIELDS = ("name", "sku", "category", "subcategory", "product_class", "description", "vendor", "manufacturer")


def words(text: object) -> list[str]:
    if text is None:
        return []
    return [w for w in _NON_WORD.split(str(text).lower()) if w]


def name_words(text: object) -> list[str]:
    """`words`, each word followed by its CamelCase / letter-digit parts when it has several."""
    if text is None:
        return []
    out: list[str] = []
    for token in _RAW_WORD.split(str(text)):
        if not token:
            continue
        out.append(token.lower())
        if any(c.isdigit() for c in token) or any(c.isupper() for c in token[1:]):
            parts = _PART.findall(token)
            if len(parts) > 1:
                out.extend(part.lower() for part in parts)
    return out


@lru_cache(maxsize=1)
def tree_glosses() -> dict[str, tuple[str, ...]]:
    """Global subcategory path -> the tree's words for it: its name, then each item of its
    gloss comment in categories.yaml ("# laptops, desktops, monitors, docking stations")."""
    glosses: dict[str, tuple[str, ...]] = {}
    category = None
    for line in CATEGORIES_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            category = line.split(":", 1)[0].strip()
        elif category is not None and line.strip().startswith("- "):
            name, _, gloss = line.strip()[2:].partition("#")
            items = [item.strip() for item in gloss.split(",") if item.strip()]
            glosses[f"{category}/{name.strip()}"] = (name.strip(), *items)
    return glosses


def _text_features(prefix: str, tokens: Sequence[str], weight: float, into: dict[str, float]) -> None:
    for token in tokens:
        key = f"{prefix}w:{token}"
        into[key] = into.get(key, 0.0) + weight * WORD_WEIGHT
        padded = f"<{token}>"
        for size in NGRAM_SIZES:
            for start in range(len(padded) - size + 1):
                key = f"{prefix}{padded[start:start + size]}"
                into[key] = into.get(key, 0.0) + weight * NGRAM_WEIGHT
    for first, second in zip(tokens, tokens[1:]):
        key = f"{prefix}b:{first} {second}"
        into[key] = into.get(key, 0.0) + weight * PAIR_WEIGHT


def product_features(record: dict) -> dict[str, float]:
    """The weighted features of one normalized product record (missing fields are skipped)."""
    features: dict[str, float] = {}
    _text_features("", name_words(record.get("name")), NAME_WEIGHT, features)
    description = record.get("description")
    if description and description != record.get("name"):
        _text_features("", name_words(description), DESCRIPTION_WEIGHT, features)
    _text_features("s:", name_words(record.get("sku")), SKU_WEIGHT, features)
    category, subcategory = words(record.get("category")), words(record.get("subcategory"))
    for token in category + subcategory:
        features[f"c:{token}"] = CATEGORY_WEIGHT
    if category:
        path = " ".join(category) + ("/" + " ".join(subcategory) if subcategory else "")
        features[f"cp:{path}"] = CATEGORY_WEIGHT
    for token in words(record.get("product_class")):
        features[f"k:{token}"] = CLASS_WEIGHT
    for token in words(record.get("vendor") or record.get("manufacturer")):
        features[f"v:{token}"] = VENDOR_WEIGHT
    return features


class Vectorizer:
    """TF-IDF over the features of the rows it is fitted on; unknown features are dropped."""

    def __init__(self, rows: Iterable[dict[str, float]], min_rows: int = 1) -> None:
        rows = list(rows)
        counts: dict[str, int] = {}
        total = 0
        for features in rows:
            total += 1
            for key in features:
                counts[key] = counts.get(key, 0) + 1
        # a feature of a single training row cannot tell that row's class to any other row
        kept = [(key, n) for key, n in counts.items() if n >= min_rows]
        self.index = {key: i for i, (key, _) in enumerate(kept)}
        self.idf = np.array([math.log((1 + total) / (1 + n)) + 1.0 for _, n in kept]) ** IDF_POWER

    @property
    def size(self) -> int:
        return len(self.index)

    def row(self, features: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(feature indices, L2-normalized TF-IDF values) of one row."""
        index = self.index
        found = [(index[key], value) for key, value in features.items() if key in index]
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        idx = np.fromiter((i for i, _ in found), dtype=np.int64, count=len(found))
        values = np.fromiter((v for _, v in found), dtype=float, count=len(found))
        values = (1.0 + np.log(values.clip(min=1e-9)).clip(min=0.0)) * values.clip(max=1.0) * self.idf[idx]
        norm = math.sqrt(float(values @ values))
        return idx, values / norm if norm else values
