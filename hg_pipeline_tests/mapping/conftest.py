"""Shared fixtures of the mapping tests (pure: no Dagster, no database)."""

import pytest

from hg_pipeline.mapping.categories import CategoryTree, global_category_paths


@pytest.fixture(scope="session")
def global_paths() -> set[str]:
    return set(global_category_paths())


@pytest.fixture
def tree() -> CategoryTree:
    return CategoryTree(tenant_id="acme")
