"""Ingest work units: one row per (corpus, unit) with status, counts and timings.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("corpus", sa.Text(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("ingested", sa.Integer(), nullable=True),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("skip_reasons", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ingest_units"),
        sa.UniqueConstraint("corpus", "unit", name="uq_ingest_units_corpus_unit"),
    )
    op.create_index("ix_ingest_units_corpus_status", "ingest_units", ["corpus", "status"])


def downgrade() -> None:
    op.drop_index("ix_ingest_units_corpus_status", table_name="ingest_units")
    op.drop_table("ingest_units")
