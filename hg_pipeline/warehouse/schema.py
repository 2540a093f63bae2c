"""`hg-pipeline db upgrade`: migrate the warehouse and load HighGround's global category tree."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, select, text

from hg_pipeline.ids import category_id
from hg_pipeline.mapping.categories import global_category_paths, split_path
from hg_pipeline.warehouse.db import SCHEMA, is_postgres
from hg_pipeline.warehouse.tables import categories

MIGRATIONS = Path(__file__).parent / "migrations"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (the newest by default) and, at head, (re)load the
    global category tree."""
    _migrate(engine, command.upgrade, revision)
    if revision == "head":
        seed_global_categories(engine)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to `revision` ("base": no tables)."""
    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step, revision: str) -> None:
    with engine.begin() as conn:
        if is_postgres(engine):
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        step(config, revision)


def is_current(engine: Engine) -> bool:
    """True when the warehouse has been upgraded (the tenants table exists)."""
    from sqlalchemy import inspect

    return inspect(engine).has_table("tenants", schema=SCHEMA if is_postgres(engine) else None)


def revisions(engine: Engine) -> tuple[str | None, str]:
    """(the warehouse's Alembic revision, the newest this package has)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as conn:
        options = {"version_table_schema": SCHEMA} if is_postgres(engine) else {}
        current = MigrationContext.configure(conn, opts=options).get_current_revision()
    return current, head


def outdated(engine: Engine) -> str | None:
    """Why the warehouse cannot be used by this package as it is (no schema, or an older
    revision), as the end of a sentence; None when it is up to date."""
    if not is_current(engine):
        return "has no schema yet"
    current, head = revisions(engine)
    if current != head:
        return f"is at schema revision {current}, this version of hg_pipeline needs {head}"
    return None


def seed_global_categories(engine: Engine) -> int:
    """Insert the global paths that are missing; returns how many were added."""
    rows = []
    for path in global_category_paths():
        parent, sub = split_path(path)
        rows.append({
            "id": category_id(path),
            "tenant_id": None,
            "name": sub or parent,
            "parent_id": category_id(parent) if sub else None,
            "path": path,
            "custom": False,
        })
    with engine.begin() as conn:
        existing = set(conn.scalars(select(categories.c.id).where(categories.c.tenant_id.is_(None))))
        missing = [row for row in rows if row["id"] not in existing]
        if missing:
            conn.execute(categories.insert(), missing)
        return len(missing)


def global_category_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(categories).where(categories.c.tenant_id.is_(None)))
