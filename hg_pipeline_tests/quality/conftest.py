"""Valid mapped frames per entity, to be broken one column at a time by the tests."""

from __future__ import annotations

import pandas as pd
import pytest

from hg_pipeline.entities import ENTITY_LOADS
from hg_pipeline.ids import category_id, record_id

TENANT = "acme"
CATEGORY_PATHS = ("Hardware", "Hardware/Laptops", "Software", "Software/Licences")
CATEGORY_IDS = {category_id(path) for path in CATEGORY_PATHS}
COMPANY_COUNT = 50


def _company_ids() -> set[str]:
    return {record_id(TENANT, "companies", str(i)) for i in range(COMPANY_COUNT)}


def _mapped_frame(entity: str, n: int = 20) -> pd.DataFrame:
    """A frame of `n` rows that passes every expectation for `entity`."""
    psa_ids = [str(1000 + i) for i in range(n)]
    columns: dict[str, list] = {
        "tenant_id": [TENANT] * n,
        "id": [record_id(TENANT, entity, p) for p in psa_ids],
        "psa_id": psa_ids,
    }
    company = [record_id(TENANT, "companies", str(i % COMPANY_COUNT)) for i in range(n)]
    if entity == "companies":
        types = ("client", "prospect", "supplier", "manufacturer")
        columns |= {
            "name": [f"Company {i}" for i in range(n)],
            "psa_name": [f"Company {i}" for i in range(n)],
            "hg_type": [types[i % 4] for i in range(n)],
            "psa_type": ["Customer"] * n,
        }
    elif entity == "contacts":
        columns |= {
            "company_id": company,
            "first_name": ["Ada"] * n,
            "last_name": [f"Lovelace{i}" for i in range(n)],
            # every third contact has no e-mail: null is allowed
            "email": [None if i % 3 == 0 else f"ada{i}@example.com" for i in range(n)],
            "contact_type": ["Primary"] * n,
            "invite_status": ["not_invited"] * n,
        }
    elif entity == "products":
        sources = ("record", "distribution", "category", "smart")
        paths = sorted(CATEGORY_PATHS)
        columns |= {
            "sku": [f"SKU-{i}" for i in range(n)],
            "name": [f"Product {i}" for i in range(n)],
            "category_id": [category_id(paths[i % len(paths)]) for i in range(n)],
            "mapping_source": [sources[i % 4] for i in range(n)],
            "price": [10.5 + i for i in range(n)],
            "cost": [None if i % 5 == 0 else 7.25 for i in range(n)],
        }
    elif entity == "members":
        statuses = ("not_invited", "invited", "accepted")
        columns |= {
            "name": [f"Tech {i}" for i in range(n)],
            "email": [f"tech{i}@msp.example" for i in range(n)],
            "invite_status": [statuses[i % 3] for i in range(n)],
        }
    elif entity == "assets":
        columns |= {
            "company_id": company,
            "name": [f"Laptop {i}" for i in range(n)],
            "asset_type": ["Laptop"] * n,
            "serial_number": [f"SN{i:06d}" for i in range(n)],
        }
    frame = pd.DataFrame(columns)
    assert set(frame.columns) == {"tenant_id", *ENTITY_LOADS[entity].columns}
    return frame


def _distributions_for(products: pd.DataFrame) -> pd.DataFrame:
    """Each `distribution` product split 33.3…/33.3…/33.3… over three categories (float noise)."""
    rows = []
    paths = sorted(CATEGORY_PATHS)
    for product_id in products.loc[products["mapping_source"] == "distribution", "id"]:
        for path, pct in zip(paths, (100 / 3, 100 / 3, 100 / 3)):
            rows.append({"tenant_id": TENANT, "product_id": product_id, "category_id": category_id(path), "pct": pct})
    return pd.DataFrame(rows)


@pytest.fixture
def ids_for():
    """Keyword arguments naming the reference ids an entity's check needs."""

    def make(entity: str) -> dict:
        if entity in ("contacts", "assets"):
            return {"company_ids": _company_ids()}
        if entity == "products":
            return {"category_ids": set(CATEGORY_IDS)}
        return {}

    return make


@pytest.fixture
def mapped_frame():
    """`mapped_frame(entity, n=20)`: a valid mapped frame."""
    return _mapped_frame


@pytest.fixture
def distributions_for():
    """`distributions_for(products)`: valid product distributions for a products frame."""
    return _distributions_for
