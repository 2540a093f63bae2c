"""The labelled set shipped with the project (labelled.csv) and its cross-validation folds.

Each row is an MSP product or service as a PSA would hold it (name, SKU, PSA category and
subcategory, product class) with its HighGround category path. `family` groups the variants
of one product line ("hardware:latitude"): folds keep a family together, so every held-out
score is on a product line the model never saw, not on a sibling of a training row.
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hg_pipeline.mapping.smart.model import Example

LABELLED_FILE = Path(__file__).with_name("labelled.csv")
FOLDS = 5


@dataclass(frozen=True)
class LabelledRow:
    example: Example
    family: str


@lru_cache(maxsize=1)
def labelled_rows() -> tuple[LabelledRow, ...]:
    with LABELLED_FILE.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        record = {key: row[key] or None for key in ("name", "sku", "category", "subcategory", "product_class")}
        out.append(LabelledRow(Example(record, row["path"]), row["family"]))
    return tuple(out)


def labelled_examples() -> list[Example]:
    return [row.example for row in labelled_rows()]


def fold_of(rows: tuple[LabelledRow, ...] | list[LabelledRow], folds: int = FOLDS, *,
            by_family: bool = True) -> list[int]:
    """The fold of every row: the families of each path (each row, with `by_family` false)
    dealt round-robin, stratified by path, from a stable offset per path so small paths spread."""
    families_by_path: dict[str, list[str]] = {}
    for i, row in enumerate(rows):
        families = families_by_path.setdefault(row.example.path, [])
        key = row.family if by_family else f"{row.family}#{i}"
        if key not in families:
            families.append(key)
    fold_by_family = {}
    for path, families in families_by_path.items():
        offset = zlib.crc32(path.encode()) % folds
        for i, family in enumerate(sorted(families)):
            fold_by_family[family] = (offset + i) % folds
    return [fold_by_family[row.family if by_family else f"{row.family}#{i}"] for i, row in enumerate(rows)]
