"""The warehouse tests' engine: the test PostgreSQL, and the embedded SQLite."""

from __future__ import annotations

import pytest

from hg_pipeline.warehouse import db
from hg_pipeline.warehouse.schema import upgrade


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, warehouse, tmp_path):
    if request.param == "postgresql":
        return warehouse
    sqlite = db.connect(f"sqlite:///{tmp_path / 'w.db'}")
    upgrade(sqlite)
    return sqlite
