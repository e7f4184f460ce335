"""Ingesting a corpus, unit by unit, resumably, into the two collections.

A source (`xmore_db.sources`) splits the corpus into work units; the unit ledger
(`history.units`) records each unit's status in the SQL database. A worker
claims a pending unit, reads it in batches, drops and counts bad rows, computes
the embeddings the source does not bring, and hands each batch to one writer
thread that upserts while the next batch is read and encoded. The unit is marked
done only once all its batches are durable, so a process killed mid-unit leaves
that unit unfinished: the next run takes it again under the same deterministic
pair ids (no duplicate), texts before images, and a caption written without its
image is completed then (no orphan).

Images are decoded by a thread pool one batch ahead of the encoder, so the
model does not wait on JPEG decoding. `workers` threads claim units in this
process; more processes (on more machines) need PostgreSQL and a Qdrant server.

Modules: `run` (the checks, the run and its workers), `accounting` (what a
unit's rows count as: new, already present, another unit's duplicate key),
`writer` (the writer thread), `report` (what a run reports).
"""

from __future__ import annotations

from .report import IngestReport, UnitOutcome
from .run import IngestOptions, ingest
from .writer import AfterWrite

__all__ = ["AfterWrite", "IngestOptions", "IngestReport", "UnitOutcome", "ingest"]
