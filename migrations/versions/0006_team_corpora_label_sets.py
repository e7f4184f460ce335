"""The team that ingested each corpus over HTTP, and named label sets per team.

Corpora ingested before this revision, and those ingested by the CLI or the
Python API, have no row in corpus_owners: they belong to the open team.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "corpus_owners",
        sa.Column("corpus", sa.Text(), nullable=False),
        sa.Column("team", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("corpus", name="pk_corpus_owners"),
    )
    op.create_table(
        "label_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_label_sets"),
        sa.UniqueConstraint("team", "name", name="uq_label_sets_team_name"),
    )


def downgrade() -> None:
    op.drop_table("label_sets")
    op.drop_table("corpus_owners")
