"""Confidence history: streams with running statistics, and their events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "streams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_events", sa.Integer(), nullable=False),
        sa.Column("image_min", sa.Double(), nullable=False),
        sa.Column("image_max", sa.Double(), nullable=False),
        sa.Column("image_sum", sa.Double(), nullable=False),
        sa.Column("text_count", sa.Integer(), nullable=False),
        sa.Column("text_min", sa.Double(), nullable=True),
        sa.Column("text_max", sa.Double(), nullable=True),
        sa.Column("text_sum", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_streams"),
        sa.UniqueConstraint("name", name="uq_streams_name"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("c_image", sa.Double(), nullable=False),
        sa.Column("c_text", sa.Double(), nullable=True),
        sa.Column("w_image", sa.Double(), nullable=False),
        sa.Column("w_text", sa.Double(), nullable=False),
        sa.Column("prediction", sa.Text(), nullable=False),
        sa.Column("normalize", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name="fk_events_stream_id_streams",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("stream_id", "seq", name="uq_events_stream_id_seq"),
    )


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("streams")
