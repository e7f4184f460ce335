"""The confidence-history tables, as SQLAlchemy Core metadata.

The database gets these tables only through the Alembic revisions in
`migrations/versions/`; this metadata is what `alembic check` compares them with.
Constraint names follow one naming convention so both dialects agree on them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# One row per stream: the running statistics the adjustment needs.
# n_events counts every query (each has an image confidence); text_count only
# those that had a caption, so text_min/text_max stay NULL until one does.
streams = Table(
    "streams",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("n_events", Integer, nullable=False),
    Column("image_min", Double, nullable=False),
    Column("image_max", Double, nullable=False),
    Column("image_sum", Double, nullable=False),
    Column("text_count", Integer, nullable=False),
    Column("text_min", Double, nullable=True),
    Column("text_max", Double, nullable=True),
    Column("text_sum", Double, nullable=False),
    Column("method", Text, nullable=False, server_default="xmore"),
)

# Append-only: one row per classified query, numbered 1.. within its stream.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "stream_id",
        Integer,
        ForeignKey("streams.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("seq", Integer, nullable=False),
    Column("query", Text, nullable=True),
    Column("c_image", Double, nullable=False),
    Column("c_text", Double, nullable=True),
    Column("w_image", Double, nullable=False),
    Column("w_text", Double, nullable=False),
    Column("prediction", Text, nullable=False),
    Column("normalize", Text, nullable=False),
    Column("method", Text, nullable=False, server_default="xmore"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Revision 0005: the API key that wrote the event; NULL for the CLI, the
    # Python API and an open service.
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True),
    UniqueConstraint("stream_id", "seq"),
)

# Ingest work units (revision 0002): one row per (corpus, unit), e.g. an npy
# partition or a tar shard. status: pending, running, done, failed. rows counts
# what the unit held, ingested the pairs it holds in the store, skipped the rows
# left out with skip_reasons {reason: count}. On PostgreSQL a worker holds its
# unit's row lock (SELECT ... FOR UPDATE SKIP LOCKED) until it records the outcome.
# Revision 0003: source_size and source_mtime (total bytes, latest modification
# time in seconds) of the unit's files when it was last done, and a note (a
# partial shard taken, a changed source read again).
ingest_units = Table(
    "ingest_units",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("corpus", Text, nullable=False),
    Column("unit", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("rows", Integer, nullable=True),
    Column("ingested", Integer, nullable=True),
    Column("skipped", Integer, nullable=False),
    Column("skip_reasons", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("worker", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("seconds", Double, nullable=True),
    Column("source_size", BigInteger, nullable=True),
    Column("source_mtime", Double, nullable=True),
    Column("note", Text, nullable=True),
    UniqueConstraint("corpus", "unit"),
    Index("ix_ingest_units_corpus_status", "corpus", "status"),
)

# API keys of `xmore serve` (revision 0005): a team and a role each. Only the
# sha256 of a key is stored (key_hash); prefix is its first characters, to tell
# keys apart in listings. Keys are revoked (revoked_at), never deleted, so the
# events that name one keep pointing at it.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("team", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("prefix", Text, nullable=False),
    Column("note", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Revision 0006: the team that ingested each corpus over HTTP (`xmore serve`),
# and when. A corpus without a row, like one whose team is NULL, belongs to the
# open team: the CLI and the Python API, the admin tools, record no team.
corpus_owners = Table(
    "corpus_owners",
    metadata,
    Column("corpus", Text, primary_key=True),
    Column("team", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Revision 0006: named label sets, one namespace per team. team is '' for the
# open team (not NULL: a unique constraint would take NULL teams as distinct).
# labels is a JSON list of class names, checked as labels.check_labels does.
label_sets = Table(
    "label_sets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("team", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("team", "name"),
)
