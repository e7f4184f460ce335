"""Ingest units record their source files' size and modification time, and a note.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("source_size", "source_mtime", "note")


def upgrade() -> None:
    op.add_column("ingest_units", sa.Column("source_size", sa.BigInteger(), nullable=True))
    op.add_column("ingest_units", sa.Column("source_mtime", sa.Double(), nullable=True))
    op.add_column("ingest_units", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.drop_column("ingest_units", name)
