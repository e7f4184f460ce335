"""Each stream and each event records the classification method that produced it.

A stream holds one method: its confidence statistics only mean something for one.
Streams and events written before this revision were X-MoRe's.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("streams", "events"):
        op.add_column(table, sa.Column("method", sa.Text(), nullable=False, server_default="xmore"))


def downgrade() -> None:
    for table in ("events", "streams"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("method")
