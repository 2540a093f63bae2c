"""Indexes on when a staged record was last written and when it vanished: a nightly's map and
extract stages ask staging for its latest change and what changed since a moment, and each of
those scanned every payload of the entity without them (about 0.1 s a question for 100,000
assets, a second of a nightly). Vanished records are few: that index holds only them.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_raw_records_last_seen", "raw_records", ["tenant_id", "entity", "last_seen_at"])
    vanished = sa.text("vanished_at IS NOT NULL")
    op.create_index("ix_raw_records_vanished", "raw_records", ["tenant_id", "entity", "vanished_at"],
                    postgresql_where=vanished, sqlite_where=vanished)


def downgrade() -> None:
    op.drop_index("ix_raw_records_vanished", table_name="raw_records")
    op.drop_index("ix_raw_records_last_seen", table_name="raw_records")
