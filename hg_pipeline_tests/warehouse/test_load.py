"""Bulk load semantics on a real PostgreSQL (and on the embedded SQLite)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hg_pipeline.ids import category_id, record_id
from hg_pipeline.mapping.categories import global_category_paths
from hg_pipeline.warehouse.load import LoadError, load_entity
from hg_pipeline.warehouse.schema import global_category_count, upgrade
from hg_pipeline.warehouse.tables import categories, companies
from hg_pipeline.warehouse.tenants import Tenant, TenantError, add_tenant, get_tenant


def company(tenant: str, psa_id: str, name: str, hg_type: str = "client") -> dict:
    return {"tenant_id": tenant, "id": record_id(tenant, "companies", psa_id), "psa_id": psa_id, "name": name,
            "psa_name": name, "hg_type": hg_type, "psa_type": "Customer"}


def add(engine, tenant_id: str) -> None:
    add_tenant(engine, Tenant(tenant_id, tenant_id.title(), "connectwise", "http://127.0.0.1:1",
                              {k: f"env:X_{k.upper()}" for k in ("company_id", "public_key", "private_key", "client_id")}))


def live(engine, tenant_id: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(select(companies.c.psa_id, companies.c.name).where(
            companies.c.tenant_id == tenant_id, companies.c.deleted_at.is_(None))).all()
    return dict(rows)


def test_upgrade_loads_the_global_tree_once(engine):
    before = global_category_count(engine)
    upgrade(engine)
    assert global_category_count(engine) == before == len(global_category_paths())
    with engine.connect() as conn:
        parent = conn.scalar(select(categories.c.parent_id).where(categories.c.path == "Security/Email Security"))
    assert parent == category_id("Security")


def test_insert_update_unchanged_and_soft_delete(engine):
    add(engine, "acme")
    rows = [company("acme", str(i), f"Company {i}") for i in range(1, 6)]
    assert load_entity(engine, "acme", "companies", rows).inserted == 5
    again = load_entity(engine, "acme", "companies", rows)
    assert (again.inserted, again.updated, again.unchanged, again.soft_deleted) == (0, 0, 5, 0)
    rows[0]["name"] = "Renamed"
    changed = load_entity(engine, "acme", "companies", rows[:4])
    assert (changed.updated, changed.soft_deleted) == (1, 1)
    assert live(engine, "acme") == {"1": "Renamed", "2": "Company 2", "3": "Company 3", "4": "Company 4"}
    revived = load_entity(engine, "acme", "companies", rows)
    assert (revived.updated, revived.inserted) == (1, 0)
    assert len(live(engine, "acme")) == 5


def test_map_to_existing_company_links_then_unlinks_it(engine):
    add(engine, "acme")
    from datetime import datetime, timezone
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(companies.insert(), {"id": "hg-42", "tenant_id": "acme", "name": "Acme HQ", "hg_type": "client",
                                          "origin": "highground", "created_at": now, "updated_at": now})
    imported = company("acme", "250", "ACME Ltd")
    load_entity(engine, "acme", "companies", [imported])
    mapped = dict(imported, id="hg-42", name="Acme HQ")
    counts = load_entity(engine, "acme", "companies", [mapped])
    assert (counts.inserted, counts.updated, counts.soft_deleted) == (0, 1, 1)
    assert live(engine, "acme") == {"250": "Acme HQ"}
    counts = load_entity(engine, "acme", "companies", [imported])
    assert counts.unlinked == 1
    with engine.connect() as conn:
        hq = conn.execute(select(companies).where(companies.c.id == "hg-42")).mappings().one()
    assert hq["psa_id"] is None and hq["deleted_at"] is None


def test_tenants_never_touch_each_others_rows(engine):
    add(engine, "acme")
    add(engine, "globex")
    load_entity(engine, "acme", "companies", [company("acme", "1", "Acme One")])
    load_entity(engine, "globex", "companies", [company("globex", "1", "Globex One")])
    load_entity(engine, "globex", "companies", [])
    assert live(engine, "acme") == {"1": "Acme One"}
    assert live(engine, "globex") == {}
    stolen = dict(company("globex", "9", "x"), id=record_id("acme", "companies", "1"))
    with pytest.raises(LoadError, match="another tenant"):
        load_entity(engine, "globex", "companies", [stolen])
    assert live(engine, "acme") == {"1": "Acme One"}


def test_volume_guard_refuses_and_keeps_rows(engine):
    add(engine, "acme")
    rows = [company("acme", str(i), f"C{i}") for i in range(10)]
    load_entity(engine, "acme", "companies", rows)
    with pytest.raises(LoadError, match="would soft-delete 5 of 10"):
        load_entity(engine, "acme", "companies", rows[:5], max_delete_share=0.2)
    assert len(live(engine, "acme")) == 10


def test_custom_categories_are_created_for_the_tenant(engine):
    add(engine, "acme")
    custom = [{"id": category_id("Widgets", "acme"), "tenant_id": "acme", "name": "Widgets", "parent_id": None,
               "path": "Widgets", "custom": True}]
    product = {"tenant_id": "acme", "id": record_id("acme", "products", "1"), "psa_id": "1", "sku": "W-1",
               "name": "Widget", "category_id": custom[0]["id"], "mapping_source": "category", "price": 1.0, "cost": 0.5}
    load_entity(engine, "acme", "products", [product], new_categories=custom, distributions=[])
    load_entity(engine, "acme", "products", [product], new_categories=custom, distributions=[])
    with engine.connect() as conn:
        rows = conn.execute(select(categories.c.tenant_id, categories.c.custom).where(
            categories.c.path == "Widgets")).all()
    assert rows == [("acme", True)]


def test_tenant_validation(engine):
    with pytest.raises(TenantError, match="tenant id"):
        add(engine, "Bad Id")
    with pytest.raises(TenantError, match="unknown tenant 'nobody'"):
        get_tenant(engine, "nobody")
    with pytest.raises(TenantError, match="reference like env:VAR"):
        add_tenant(engine, Tenant("acme", "Acme", "connectwise", "http://x", {"company_id": "plainsecret"}))


def test_packed_rows_load_block_by_block_like_a_list(engine, monkeypatch):
    from hg_pipeline.mapping import packed

    monkeypatch.setattr(packed, "BLOCK_SIZE", 3)
    add(engine, "acme")
    rows = [company("acme", str(i), f"Company {i}") for i in range(1, 9)]
    counts = load_entity(engine, "acme", "companies", packed.Packed(rows))
    assert (counts.inserted, counts.rows) == (8, 8)
    rows[6]["name"] = "Renamed"  # in the third block
    again = load_entity(engine, "acme", "companies", packed.Packed(rows[1:]))
    assert (again.inserted, again.updated, again.unchanged, again.soft_deleted) == (0, 1, 6, 1)
    assert live(engine, "acme") == {str(i): "Renamed" if i == 7 else f"Company {i}" for i in range(2, 9)}


def test_an_id_twice_in_the_mapped_set_loads_nothing(engine, monkeypatch):
    from hg_pipeline.mapping import packed

    monkeypatch.setattr(packed, "BLOCK_SIZE", 2)
    add(engine, "acme")
    rows = [company("acme", str(i), f"Company {i}") for i in range(1, 5)]
    load_entity(engine, "acme", "companies", rows)
    twice = [*rows, {**rows[0], "name": "Again"}]  # the repeat sits in another block
    with pytest.raises(LoadError, match=f"id {rows[0]['id']} appears twice"):
        load_entity(engine, "acme", "companies", packed.Packed(twice))
    assert live(engine, "acme") == {str(i): f"Company {i}" for i in range(1, 5)}


def test_a_first_load_goes_straight_in_and_still_refuses_another_tenants_id(engine):
    add(engine, "acme")
    add(engine, "globex")
    load_entity(engine, "acme", "companies", [company("acme", "1", "Acme One")])
    counts = load_entity(engine, "globex", "companies", [company("globex", str(i), f"G{i}") for i in range(3)])
    assert (counts.inserted, counts.rows) == (3, 3) and live(engine, "globex") == {"0": "G0", "1": "G1", "2": "G2"}
    with engine.connect() as conn:
        origins = set(conn.scalars(select(companies.c.origin).where(companies.c.tenant_id == "globex")))
    assert origins == {"psa"}

    add(engine, "initech")  # nothing of it in the table: its first load COPYs straight in
    stolen = dict(company("initech", "9", "x"), id=record_id("acme", "companies", "1"))
    with pytest.raises(LoadError, match="another tenant") as refused:
        load_entity(engine, "initech", "companies", [company("initech", "8", "fine"), stolen])
    assert "\n" not in str(refused.value)
    assert live(engine, "acme") == {"1": "Acme One"} and live(engine, "initech") == {}
