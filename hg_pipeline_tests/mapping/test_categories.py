"""The category tree: global paths from categories.yaml, tenant custom paths, ids, rows."""

import pytest

from hg_pipeline.ids import category_id
from hg_pipeline.mapping.categories import CategoryTree, global_category_paths


def test_global_ids_have_no_tenant_and_custom_ids_do():
    tree = CategoryTree(custom_paths=["Field Work/Onsite"], tenant_id="acme")
    assert tree.id_of("Hardware") == category_id("Hardware")
    assert tree.id_of("Field Work/Onsite") == category_id("Field Work/Onsite", "acme")
    assert tree.id_of("Field Work") == category_id("Field Work", "acme")  # missing parent added
    with pytest.raises(KeyError):
        tree.id_of("Nope")


def test_rows_parents_first_with_parent_ids():
    tree = CategoryTree(custom_paths=["Hardware/Tablets", "Field Work/Onsite"], tenant_id="acme")
    rows = {row["path"]: row for row in tree.rows("acme")}
    assert len(rows) == len(global_category_paths()) + 3
    assert rows["Hardware"] == {
        "tenant_id": None, "id": category_id("Hardware"), "name": "Hardware",
        "parent_id": None, "custom": False, "path": "Hardware",
    }
    assert rows["Hardware/Tablets"]["parent_id"] == category_id("Hardware")  # global parent
    assert rows["Hardware/Tablets"]["tenant_id"] == "acme" and rows["Hardware/Tablets"]["custom"] is True
    assert rows["Hardware/Tablets"]["name"] == "Tablets"
    assert rows["Field Work/Onsite"]["parent_id"] == category_id("Field Work", "acme")
    order = [row["path"] for row in tree.rows()]
    assert order.index("Field Work") < order.index("Field Work/Onsite")
    assert [r["path"] for r in tree.rows(include_global=False)] == ["Field Work", "Hardware/Tablets", "Field Work/Onsite"]


def test_custom_path_equal_to_global_is_global():
    tree = CategoryTree(custom_paths=["Hardware/Servers & Storage"], tenant_id="acme")
    assert not tree.is_custom("Hardware/Servers & Storage")
    assert tree.rows(include_global=False) == []


def test_two_tenants_get_different_custom_ids():
    a = CategoryTree(custom_paths=["Software/Custom"], tenant_id="a")
    b = CategoryTree(custom_paths=["Software/Custom"], tenant_id="b")
    assert a.id_of("Software/Custom") != b.id_of("Software/Custom")
    assert a.id_of("Software & Licensing") == b.id_of("Software & Licensing")


def test_copy_does_not_touch_the_original():
    tree = CategoryTree()
    clone = tree.copy(tenant_id="acme")
    clone.add_custom("X/Y")
    assert "X/Y" in clone and "X/Y" not in tree
    with pytest.raises(ValueError):
        tree.add_custom("X/Y")  # no tenant
    with pytest.raises(ValueError):
        CategoryTree(tenant_id="a").copy(tenant_id="b")
