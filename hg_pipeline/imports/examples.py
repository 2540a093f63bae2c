"""Example import files: the simulated MSP of the demo written as import files.

`hg_pipeline/imports/examples/` ships the small dataset (seed 1) this way, one file per entity,
in the formats a user would write: CSV for most, JSON Lines for members. The demo imports them
(`hg-pipeline demo --source import`); `python -m hg_pipeline.imports.examples` writes them again.
The bench writes large files the same way (`write_spend_csv`).
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path

from hg_pipeline.imports.formats import format_of
from hg_pipeline.simulators.datasets import Dataset, generate

EXAMPLES_DIR = Path(__file__).with_name("examples")
SPEND_MONTHS = ("2026-08", "2026-09", "2026-10")


def example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES_DIR.iterdir() if p.suffix in (".csv", ".jsonl"))


def write_examples(folder: Path = EXAMPLES_DIR, dataset: Dataset | None = None) -> list[Path]:
    dataset = dataset or generate("small", seed=1)
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        _csv(folder / "companies.csv", "companies", _companies(dataset)),
        _csv(folder / "contacts.csv", "contacts", _contacts(dataset)),
        _csv(folder / "products.csv", "products", _products(dataset)),
        _jsonl(folder / "members.jsonl", _members(dataset)),
        _csv(folder / "assets.csv", "assets", _assets(dataset)),
        _csv(folder / "spend.csv", "spend", _spend(dataset)),
    ]
    return written


def write_spend_csv(path: Path, rows: int, companies: int = 2_000, products: int = 500, seed: int = 1) -> Path:
    """A spend file of `rows` lines (each with its id) over `companies` x `products` x months."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("id", "company_id", "product_id", "month", "amount", "currency", "description"))
        for n in range(1, rows + 1):
            cents = rng.randint(500, 2_500_000)
            writer.writerow((f"L{n}", f"C{rng.randint(1, companies)}", f"P{rng.randint(1, products)}",
                             f"20{20 + n % 7}-{1 + n % 12:02d}", f"{cents // 100}.{cents % 100:02d}", "USD",
                             f"Invoice line {n}"))
    return path


def _csv(path: Path, entity: str, rows: Iterator[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=format_of(entity).names, extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return path


def _jsonl(path: Path, rows: Iterator[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False) + "\n")
    return path


def _name(ref: dict | None) -> str | None:
    return ref.get("name") if isinstance(ref, dict) else None


def _companies(d: Dataset) -> Iterator[dict]:
    for c in d.companies:
        if c.get("deletedFlag"):
            continue
        types = c.get("types") or []
        yield {"id": c["id"], "name": c["name"], "type": _name(types[0]) if types else None,
               "identifier": c.get("identifier"), "status": _name(c.get("status"))}


def _contacts(d: Dataset) -> Iterator[dict]:
    for c in d.contacts:
        email = next((i["value"] for i in c.get("communicationItems", []) if i.get("communicationType") == "Email"),
                     None)
        types = c.get("types") or []
        yield {"id": c["id"], "company_id": (c.get("company") or {}).get("id"), "first_name": c.get("firstName"),
               "last_name": c.get("lastName"), "email": email, "type": _name(types[0]) if types else None,
               "inactive": "yes" if c.get("inactiveFlag") else "no"}


def _products(d: Dataset) -> Iterator[dict]:
    for p in d.catalog:
        category = "/".join(n for n in (_name(p.get("category")), _name(p.get("subcategory"))) if n) or None
        yield {"id": p["id"], "name": p["description"], "sku": p.get("identifier"), "category": category,
               "price": f"{p['price']:.2f}" if p.get("price") is not None else None,
               "cost": f"{p['cost']:.2f}" if p.get("cost") is not None else None,
               "product_class": p.get("productClass"), "inactive": "yes" if p.get("inactiveFlag") else "no"}


def _members(d: Dataset) -> Iterator[dict]:
    for m in d.members:
        yield {"id": str(m["id"]), "first_name": m.get("firstName"), "last_name": m.get("lastName"),
               "email": m.get("primaryEmail"), "identifier": m.get("identifier"),
               "inactive": bool(m.get("inactiveFlag"))}


def _assets(d: Dataset) -> Iterator[dict]:
    for a in d.configurations:
        yield {"id": a["id"], "company_id": (a.get("company") or {}).get("id"), "name": a["name"],
               "asset_type": _name(a.get("type")), "serial_number": a.get("serialNumber"),
               "active": "yes" if a.get("activeFlag", True) else "no"}


def _spend(d: Dataset) -> Iterator[dict]:
    """Each client pays monthly for a few of the recurring products, at their price."""
    rng = random.Random(7)
    recurring = [p for p in d.catalog if p.get("recurringFlag") and p.get("price")]
    clients = [c for c in d.companies if not c.get("deletedFlag")
               and any(_name(t) == "Customer" for t in c.get("types") or [])]
    for company in clients:
        for product in rng.sample(recurring, min(3, len(recurring))):
            seats = rng.randint(1, 40)
            for month in SPEND_MONTHS:
                yield {"id": None, "company_id": company["id"], "product_id": product["id"], "category": None,
                       "month": month, "amount": f"{seats * product['price']:.2f}", "currency": "USD",
                       "description": f"{seats} x {product['description']}"}


if __name__ == "__main__":
    for written in write_examples():
        print(written)
