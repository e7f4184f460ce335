"""The embedded backend: two Qdrant Edge shards in-process, one process per store.

Layout under the store path (`<home>/qdrant`):

    xmore-store.json   what built the collections (written once, by init)
    images/            EdgeShard, named vector "coarse", HNSW m=16
    texts/             EdgeShard, named vector "fine", no graph (m=0): only ever
                       searched under a has_id filter, which touches only the listed points

Points are searchable as soon as they are written; the HNSW graph of `images`
is built by optimize(), which ingest calls at its end.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from ..errors import (
    StoreError,
    StoreLockedError,
    StoreMismatchError,
    StoreNotInitializedError,
)
from .base import (
    CAPTION_VECTOR,
    COARSE_VECTOR,
    FINE_VECTOR,
    IMAGES,
    TEXTS,
    CaptionCache,
    CaptionHit,
    ImageHit,
    PairBatch,
    Provenance,
    cached_rows,
    canonical_ids,
    check_batch,
    check_candidates,
    check_caption_vectors,
    check_limit,
    check_provenance,
    check_queries,
    short,
    sorted_by_score,
)

RECORD_NAME = "xmore-store.json"
RECORD_FORMAT = 1
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
FULL_SCAN_THRESHOLD_KB = 10_000
WRITE_CHUNK = 512
READ_CHUNK = 1024

# Which named vector, model role and graph each shard has.
_LAYOUT = {
    IMAGES: (COARSE_VECTOR, "coarse", HNSW_M),
    TEXTS: (FINE_VECTOR, "fine", 0),
}


class EdgeStore:
    """Qdrant Edge shards under `path`. Constructing touches nothing; init() or open() does."""

    backend = "qdrant-edge"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.location = str(self.path)
        self._shards: dict[str, qe.EdgeShard] | None = None
        self._stored: Provenance | None = None
        self._checked = False  # open()/init() compared the record with the configured models

    # -- lifecycle ---------------------------------------------------------

    @property
    def record_path(self) -> Path:
        return self.path / RECORD_NAME

    def _record(self) -> dict | None:
        try:
            text = self.record_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"cannot read {self.record_path}: {short(error)}") from None
        try:
            return json.loads(text)
        except ValueError as error:
            raise StoreError(
                f"the store record {self.record_path} is unreadable ({short(error)}): "
                f"restore it, or remove {self.path} and run `xmore init`"
            ) from None

    def stored_provenance(self) -> Provenance | None:
        data = self._record()
        if data is None:
            return None
        try:
            return Provenance.from_dict(data["provenance"])
        except (ValueError, KeyError, TypeError) as error:
            raise StoreError(
                f"the store record {self.record_path} is unreadable ({short(error)}): "
                f"restore it, or remove {self.path} and run `xmore init`"
            ) from None

    def init(self, provenance: Provenance) -> bool:
        stored = self.stored_provenance()
        if stored is not None:
            check_provenance(stored, provenance, self.location)
        self._check_shard_sizes(provenance)
        if stored is None:
            self._write_record(provenance)
        created = [name for name in (IMAGES, TEXTS) if not self._shard_exists(name)]
        self._load_shards(create=provenance)
        self._checked = True
        return bool(created)

    def open(self, provenance: Provenance) -> None:
        stored = self.stored_provenance()
        if stored is None:
            raise StoreNotInitializedError(f"no collections at {self.location}: run `xmore init`")
        check_provenance(stored, provenance, self.location)
        self._check_shard_sizes(provenance)
        self._attach()
        self._checked = True

    def close(self) -> None:
        self._close_shards()
        self._checked = False

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------

    def upsert_pairs(self, batch: PairBatch) -> None:
        if not self._checked:
            raise StoreError(
                f"the store at {self.location} was not opened: call open() or init() before writing"
            )
        shards = self._attach()
        ids, images, texts = check_batch(batch, self._stored, self.location)
        if not ids:
            return
        cached = None
        if batch.caption_vectors is not None:
            cache = self.caption_cache()
            cached = check_caption_vectors(cache, batch.caption_vectors, len(ids), self.location).tolist()
        # Texts first: an image point is what makes a pair reachable (coarse search),
        # so a crash in between leaves at most an orphan caption nobody finds.
        with self._engine("writing captions"):
            for start in range(0, len(ids), WRITE_CHUNK):
                stop = start + WRITE_CHUNK
                # Lists convert to the engine's vectors faster than numpy rows do.
                vectors = [{FINE_VECTOR: v} for v in texts[start:stop].tolist()]
                if cached is not None:
                    for named, c in zip(vectors, cached[start:stop], strict=True):
                        named[CAPTION_VECTOR] = c
                points = [
                    qe.Point(pid, named, {"caption": caption, "corpus": batch.corpus, "key": key})
                    for pid, named, caption, key in zip(
                        ids[start:stop], vectors, batch.captions[start:stop], batch.keys[start:stop], strict=True,
                    )
                ]
                shards[TEXTS].update(qe.UpdateOperation.upsert_points(points))
            shards[TEXTS].flush()
        with self._engine("writing images"):
            for start in range(0, len(ids), WRITE_CHUNK):
                stop = start + WRITE_CHUNK
                points = [
                    qe.Point(pid, {COARSE_VECTOR: vector},
                             {"corpus": batch.corpus, "key": key})
                    for pid, vector, key in zip(
                        ids[start:stop], images[start:stop].tolist(), batch.keys[start:stop], strict=True
                    )
                ]
                shards[IMAGES].update(qe.UpdateOperation.upsert_points(points))
            shards[IMAGES].flush()

    # -- caption cache -----------------------------------------------------

    def caption_cache(self) -> CaptionCache | None:
        entry = (self._record() or {}).get("caption_cache")
        return CaptionCache(model=entry["model"], dim=int(entry["dim"])) if entry else None

    def set_caption_cache(self, cache: CaptionCache) -> None:
        current = self.caption_cache()
        if current == cache:
            return
        shards = self._attach()
        with self._engine("creating the caption cache"):
            if current is not None:
                shards[TEXTS].update(qe.UpdateOperation.delete_vector_name(CAPTION_VECTOR))
            shards[TEXTS].update(qe.UpdateOperation.create_dense_vector(CAPTION_VECTOR, cache.dim, qe.Distance.Cosine))
            shards[TEXTS].flush()
        self._write_record(self.stored_provenance(), cache)

    def caption_vectors(self, ids: Sequence[str]) -> np.ndarray:
        cache = self.caption_cache()
        wanted = canonical_ids(ids)
        if cache is None or not wanted:
            return cached_rows(wanted, [], cache.dim if cache else 0)
        shards = self._attach()
        with self._engine("reading cached caption embeddings"):
            records = shards[TEXTS].retrieve(list(dict.fromkeys(wanted)), with_payload=False,
                                            with_vector=[CAPTION_VECTOR])
        return cached_rows(wanted, records, cache.dim)

    def set_caption_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        wanted = canonical_ids(ids)
        matrix = check_caption_vectors(self.caption_cache(), vectors, len(wanted), self.location)
        shards = self._attach()
        with self._engine("writing cached caption embeddings"):
            shards[TEXTS].update(qe.UpdateOperation.update_vectors(
                [qe.PointVectors(pid, {CAPTION_VECTOR: v}) for pid, v in zip(wanted, matrix.tolist(), strict=True)]))
            shards[TEXTS].flush()

    def uncached_captions(self, *, limit: int, offset: str | None = None) -> tuple[list[tuple[str, str]], str | None]:
        shards = self._attach()
        with self._engine("listing captions without a cached embedding"):
            records, next_offset = shards[TEXTS].scroll(qe.ScrollRequest(
                offset=offset, limit=limit, filter=qe.Filter(must_not=[qe.HasVectorCondition(CAPTION_VECTOR)]),
                with_payload=["caption"], with_vector=False))
        page = [(str(r.id), str((r.payload or {}).get("caption", ""))) for r in records]
        return page, None if next_offset is None else str(next_offset)

    def delete_corpus(self, corpus: str) -> None:
        shards = self._attach()
        with self._engine("deleting a corpus"):
            for name in (IMAGES, TEXTS):
                shards[name].update(qe.UpdateOperation.delete_points_by_filter(_corpus_filter(corpus)))
                shards[name].flush()

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Points are written without indexing anyway; the graph is built once, by optimize() at the end."""
        yield
        self.optimize()

    def optimize(self) -> None:
        shards = self._attach()
        with self._engine("optimizing"):
            for name in (IMAGES, TEXTS):
                shards[name].optimize()

    # -- reads -------------------------------------------------------------

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        wanted = list(dict.fromkeys(canonical_ids(ids)))
        if not wanted:
            return set()
        shards = self._attach()
        present: dict[str, set[str]] = {}
        with self._engine("looking up ids"):
            for name in (IMAGES, TEXTS):
                found: set[str] = set()
                for start in range(0, len(wanted), READ_CHUNK):
                    records = shards[name].retrieve(
                        wanted[start:start + READ_CHUNK], with_payload=False, with_vector=False
                    )
                    found.update(str(record.id) for record in records)
                present[name] = found
        return present[IMAGES] & present[TEXTS]

    def coarse_search(self, queries: np.ndarray, *, limit: int, hnsw_ef: int | None = None) -> list[list[ImageHit]]:
        shards = self._attach()
        matrix = check_queries(queries, self._stored, "coarse", self.location)
        limit = check_limit(limit)
        if len(matrix) == 0:
            return []
        params = qe.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef else None
        requests = [
            qe.QueryRequest(limit=limit, query=qe.Query.Nearest(row, using=COARSE_VECTOR),
                            params=params, with_payload=False, with_vector=False)
            for row in matrix
        ]
        with self._engine("coarse search"):
            results = shards[IMAGES].query_batch(qe.QueryBatchRequest(requests))
        return [
            sorted_by_score([ImageHit(pair_id=str(p.id), score=float(p.score)) for p in points])
            for points in results
        ]

    def fine_search(
        self, queries: np.ndarray, candidates: Sequence[Sequence[str]], *, limit: int
    ) -> list[list[CaptionHit]]:
        shards = self._attach()
        matrix = check_queries(queries, self._stored, "fine", self.location)
        limit = check_limit(limit)
        groups = check_candidates(candidates, len(matrix))
        asked = [i for i, group in enumerate(groups) if group]
        out: list[list[CaptionHit]] = [[] for _ in groups]
        if not asked:
            return out
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(matrix[i], using=FINE_VECTOR),
                filter=qe.Filter(must=[qe.HasIdCondition(set(groups[i]))]),
                params=qe.SearchParams(exact=True),  # no graph here anyway; makes it explicit
                with_payload=True,
                with_vector=False,
            )
            for i in asked
        ]
        with self._engine("fine search"):
            results = shards[TEXTS].query_batch(qe.QueryBatchRequest(requests))
        for i, points in zip(asked, results, strict=True):
            out[i] = sorted_by_score([_caption_hit(p) for p in points])
        return out

    def counts(self) -> dict[str, int]:
        shards = self._attach()
        with self._engine("counting points"):
            return {name: int(shards[name].count(qe.CountRequest(exact=True)))
                    for name in (IMAGES, TEXTS)}

    def corpus_counts(self, corpus: str) -> dict[str, int]:
        shards = self._attach()
        with self._engine("counting points"):
            return {name: int(shards[name].count(qe.CountRequest(exact=True, filter=_corpus_filter(corpus))))
                    for name in (IMAGES, TEXTS)}

    # -- internals ---------------------------------------------------------

    def _attach(self) -> dict[str, qe.EdgeShard]:
        """Load both shards once (reads need no configured models; writes need open())."""
        if self._shards is None:
            self._load_shards(create=None)
        return self._shards

    def _load_shards(self, *, create: Provenance | None) -> None:
        """Load the shards not loaded yet; create absent ones from `create`, if given."""
        stored = self.stored_provenance()
        if stored is None:
            raise StoreNotInitializedError(f"no collections at {self.location}: run `xmore init`")
        shards = dict(self._shards or {})
        opened = []
        try:
            for name in (IMAGES, TEXTS):
                if name in shards:
                    continue
                folder = str(self.path / name)
                if self._shard_exists(name):
                    with self._engine(f"opening the {name} collection"):
                        shards[name] = qe.EdgeShard.load(folder)
                elif create is not None:
                    with self._engine(f"creating the {name} collection"):
                        shards[name] = qe.EdgeShard.create(folder, _config(name, create))
                else:
                    raise StoreNotInitializedError(
                        f"no collection {name!r} at {self.location}: run `xmore init`"
                    )
                opened.append(shards[name])
        except BaseException:
            for shard in opened:
                with contextlib.suppress(Exception):
                    shard.close()
            raise
        self._shards, self._stored = shards, stored

    def _close_shards(self) -> None:
        shards, self._shards = self._shards, None
        if not shards:
            return
        errors = []
        for shard in shards.values():
            try:
                shard.close()
            except Exception as error:  # noqa: BLE001 - close the other one anyway
                errors.append(error)
        if errors:
            raise StoreError(f"closing the store at {self.location} failed: {short(errors[0])}")

    def _shard_exists(self, name: str) -> bool:
        folder = self.path / name
        return (folder / "edge_config.json").exists() or (folder / "segments").is_dir()

    def _check_shard_sizes(self, provenance: Provenance) -> None:
        """Cross-check the shards' own configs, read-only, before anything is written."""
        for name, (vector, role, _) in _LAYOUT.items():
            try:
                config = json.loads((self.path / name / "edge_config.json").read_text("utf-8"))
                size = config["vectors"][vector]["size"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # absent (init creates it) or a format we do not know: the record decides
            expected = getattr(provenance, f"{role}_dim")
            if size != expected:
                model = getattr(provenance, f"{role}_model")
                raise StoreMismatchError(
                    f"the vector store at {self.location} does not match the configured models: "
                    f"collection {name!r} holds {size}-d vectors but the configured {role} model "
                    f"is {model} ({expected}-d): configure the models it was built with, "
                    "or use a new store"
                )

    def _write_record(self, provenance: Provenance, caption_cache: CaptionCache | None = None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        data = {"format": RECORD_FORMAT, "backend": self.backend,
                "provenance": provenance.to_dict()}
        if caption_cache is not None:
            data["caption_cache"] = {"model": caption_cache.model, "dim": caption_cache.dim}
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".xmore-store-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.record_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _engine(self, action: str) -> Iterator[None]:
        """Qdrant Edge raises bare Exceptions; give them our types and one line."""
        try:
            yield
        except StoreError:
            raise
        except Exception as error:
            raise _translate(error, action, self.location) from error


def locked_message(location: str) -> str:
    return (
        f"the embedded store at {location} is open in another process; Qdrant Edge allows one "
        "process per store: stop the other process, or run a Qdrant server and set "
        "XMORE_QDRANT_URL for concurrent use"
    )


def _translate(error: Exception, action: str, location: str) -> StoreError:
    text = str(error)
    lowered = text.lower()
    if "wouldblock" in lowered or "wal" in lowered or "lock" in lowered:
        return StoreLockedError(locked_message(location))
    return StoreError(f"Qdrant Edge failed while {action} at {location}: {short(error)}")


def _config(name: str, provenance: Provenance) -> qe.EdgeConfig:
    vector, role, m = _LAYOUT[name]
    return qe.EdgeConfig(
        vectors={vector: qe.EdgeVectorParams(size=getattr(provenance, f"{role}_dim"),
                                             distance=qe.Distance.Cosine)},
        hnsw_config=qe.HnswIndexConfig(m=m, ef_construct=HNSW_EF_CONSTRUCT,
                                       full_scan_threshold=FULL_SCAN_THRESHOLD_KB),
    )


def _corpus_filter(corpus: str) -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition(key="corpus", match=qe.MatchValue(corpus))])


def _caption_hit(point: qe.ScoredPoint) -> CaptionHit:
    payload = point.payload or {}
    return CaptionHit(
        pair_id=str(point.id), score=float(point.score), caption=str(payload.get("caption", "")),
        corpus=str(payload.get("corpus", "")), key=str(payload.get("key", "")),
    )
