"""The vector store interface and the flow both engines share.

`VectorStore` holds everything that does not depend on the engine: the guard
that refuses writes before open(), validation, id canonicalising, chunking,
the texts-then-images write order, the mapping of engine points to hits, the
caption cache's bookkeeping, and the index-build marker. A backend (edge.py,
server.py) implements only the small `_hooks` below, each one engine call or
a few, and its own lifecycle (init, open, close).

Every hook runs inside `self._calls(action)`, the backend's translation of
engine failures into our errors, one line each.

Why this module is past ~400 lines: it is one class whose public methods and
the abstract hooks they call belong together; split in two, every flow would
sit in one file and the hooks it relies on in another. The validation it uses
is already apart (checks.py), and so are the records (types.py).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager

import numpy as np

from ..errors import StoreError
from .beam import (
    BEAM_KEY,
    ENOUGH_RECALL,
    PROBE_START,
    PROBES,
    UNCALIBRATED_BEAM,
    BeamCalibration,
    BeamChoice,
    BeamTarget,
    ladder,
    mean_recall,
    without_own,
)
from .checks import (
    cached_rows,
    canonical_ids,
    caption_hit,
    check_batch,
    check_cache_queries,
    check_candidates,
    check_caption_vectors,
    check_limit,
    check_queries,
    check_storage,
    short,
    sorted_by_score,
    stored_points,
    text_payloads,
)
from .storage import STORAGE_KEY, Storage, StorageRequest
from .types import (
    CAPTION_VECTOR,
    COARSE_VECTOR,
    COLLECTIONS,
    FINE_VECTOR,
    IMAGES,
    LAYOUT,
    TEXTS,
    CaptionCache,
    CaptionHit,
    ImageHit,
    IndexState,
    PairBatch,
    Provenance,
    StoredPoint,
    pair_id,
)

READ_CHUNK = 1024
# Set in the `images` record before a bulk load or an index build, cleared once the build
# has finished: a process killed in between leaves it, and the next optimize() finishes the build.
BUILD_PENDING = "index_build_pending"


class VectorStore(ABC):
    """One interface, two engines: EdgeStore (embedded) and ServerStore (qdrant-client).

    Constructing a store touches nothing; init() or open() does. Searches return
    hits sorted by score (cosine similarity) descending, ids as strings. Reads need
    no configured models; writes need open() or init() first.
    """

    backend: str  # "qdrant-edge" | "qdrant-server"
    location: str  # path or URL, never a secret
    concurrent_calls: bool = False  # whether two threads may call the engine at once (ingest reads while it writes)

    def __init__(self, location: str, storage: StorageRequest | None = None, beam: BeamTarget | None = None):
        """`storage`: what the settings ask of the storage (storage.py); nothing asked by default.
        `beam`: the recall the coarse search should reach, and at which K it is measured (beam.py)."""
        self.location = location
        self.requested_storage = storage or StorageRequest()
        self.beam_target = beam or BeamTarget()
        self._beam: BeamCalibration | None | bool = False  # the recorded calibration, once read (False: not yet)
        self._stored: Provenance | None = None  # what the collections hold, once read
        self._storage: Storage | None = None  # how they hold it, once read (fixed when they are created)
        self._checked = False  # open()/init() compared the collections with the configured models

    # -- lifecycle (engine-specific) -------------------------------------------

    @abstractmethod
    def init(self, provenance: Provenance) -> bool:
        """Create absent collections (True if any was); validate existing ones like open()."""

    @abstractmethod
    def open(self, provenance: Provenance) -> None:
        """Check the stored provenance against `provenance` before anything is written."""

    @abstractmethod
    def stored_provenance(self) -> Provenance | None: ...

    def stored_storage(self) -> Storage | None:
        """How the collections hold their vectors, as recorded at init (None before it).

        A store made before storage profiles records none: it reads as `exact`, as it was built.
        """
        with self._calls("reading the store record"):
            return self._storage_from(self._store_record())

    def _storage_from(self, record: dict | None) -> Storage | None:
        """The storage entry of a store record (None: no store)."""
        if record is None:
            return None
        try:
            return Storage.from_record(record.get(STORAGE_KEY))
        except (ValueError, TypeError) as error:
            raise StoreError(f"the storage entry recorded at {self.location} is unreadable ({short(error)}): "
                             "restore it, or use a new store") from None

    def storage(self) -> Storage:
        """The recorded storage with the oversampling the settings ask for, if any: what searches use."""
        self._provenance()
        if self._storage is None:
            self._storage = self.stored_storage() or Storage()
        return self.requested_storage.searched(self._storage)

    def _settle_storage(self, recorded: Storage | None) -> Storage:
        """What to create absent collections with: the recorded storage, checked against what the settings
        ask before anything is written, or for a new store (`recorded` None) what they ask."""
        if recorded is None:
            storage = self.requested_storage.resolve(None)
        else:
            check_storage(recorded, self.requested_storage, self.location)
            storage = recorded
        self._storage = storage
        return storage

    def close(self) -> None:
        self._checked = False
        self._close()

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------

    def upsert_pairs(self, batch: PairBatch) -> None:
        """Write texts, then images, and return once both are durable."""
        self.upsert_pair_batches([batch])

    def upsert_pair_batches(self, batches: Sequence[PairBatch]) -> None:
        """Write the texts of all `batches`, then their images, and return once all are durable.

        Each collection is made durable once for the lot: a flush of Qdrant Edge costs about
        the same for one point as for thousands, so a bulk load hands several batches at a
        time (ingest's writer does). Every batch is checked before anything is written.
        """
        self.begin_pair_batches(batches)()

    def begin_pair_batches(self, batches: Sequence[PairBatch]) -> Callable[[], None]:
        """upsert_pair_batches in two steps: this starts the write, the function it returns finishes it
        (returns once all is durable, or raises the write's error). Inside bulk_writes() an embedded
        store writes the texts of the next lot while it finishes this one's images; elsewhere the write
        is done when this returns. Lots are finished in the order they were begun."""
        self._require_open()
        provenance = self._provenance()
        texts: list[_Points] = []
        images: list[_Points] = []
        for batch in batches:
            ids, image_vectors, text_vectors = check_batch(batch, provenance, self.location)
            if not ids:
                continue
            named = {FINE_VECTOR: text_vectors}
            if batch.caption_vectors is not None:
                named[CAPTION_VECTOR] = check_caption_vectors(
                    self.caption_cache(), batch.caption_vectors, len(ids), self.location)
            texts.append((ids, named, text_payloads(batch)))
            images.append((ids, {COARSE_VECTOR: image_vectors},
                           [{"corpus": batch.corpus, "key": key} for key in batch.keys]))
        if not texts:
            return _nothing_to_finish
        return self._begin_pairs(texts, images)

    def _begin_pairs(self, texts: list[_Points], images: list[_Points]) -> Callable[[], None]:
        """Texts first, durable, then images: an image point is what makes a pair reachable (coarse
        search), so a crash in between leaves at most an orphan caption nobody finds."""
        self._write(TEXTS, texts, "writing captions")
        self._write(IMAGES, images, "writing images")
        return _nothing_to_finish

    def _write(self, collection: str, parts: list[_Points], action: str) -> None:
        with self._calls(action):
            for ids, vectors, payloads in _joined(parts):
                self._write_points(collection, ids, vectors, payloads)
            self._flush(collection)

    def delete_corpus(self, corpus: str) -> None:
        """Remove the corpus' points from both collections (images first: pairs stop being reachable)."""
        self._provenance()
        for name in COLLECTIONS:
            with self._calls("deleting a corpus"):
                self._delete_corpus(name, corpus)

    # -- the caption cache -----------------------------------------------------

    def caption_cache(self) -> CaptionCache | None:
        """The classifier the caption cache holds embeddings of, or None if there is none."""
        with self._calls("reading the store record"):
            entry = self._metadata(TEXTS).get("caption_cache")
        return CaptionCache(model=entry["model"], dim=int(entry["dim"])) if entry else None

    def set_caption_cache(self, cache: CaptionCache) -> None:
        """Make `texts` hold `cache.model`'s caption embeddings; another model's are dropped."""
        self._require_open()
        with self._calls("reading the store record"):
            record = self._metadata(TEXTS)
        current, wanted = record.get("caption_cache"), {"model": cache.model, "dim": cache.dim}
        if current == wanted:
            return
        with self._calls("creating the caption cache"):
            self._replace_caption_vector(cache.dim, drop=bool(current))
            record["caption_cache"] = wanted
            self._set_metadata(TEXTS, record)

    def caption_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """(n, cache dim) cached caption embeddings of `ids`; NaN rows where none is stored."""
        cache = self.caption_cache()
        wanted = canonical_ids(ids)
        if cache is None or not wanted:
            return cached_rows(wanted, [], cache.dim if cache else 0)
        with self._calls("reading cached caption embeddings"):
            records = self._read_vectors(TEXTS, list(dict.fromkeys(wanted)), CAPTION_VECTOR)
        return cached_rows(wanted, records, cache.dim)

    def set_caption_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Store cached caption embeddings for existing `texts` points."""
        self._require_open()
        wanted = canonical_ids(ids)
        matrix = check_caption_vectors(self.caption_cache(), vectors, len(wanted), self.location)
        with self._calls("writing cached caption embeddings"):
            self._write_vectors(TEXTS, wanted, CAPTION_VECTOR, matrix)

    def uncached_captions(self, *, limit: int, offset: str | None = None) -> tuple[list[tuple[str, str]], str | None]:
        """A page of (id, caption) without a cached embedding, and the next page's offset."""
        with self._calls("listing captions without a cached embedding"):
            records, next_offset = self._scroll_without_vector(TEXTS, CAPTION_VECTOR, limit=limit, offset=offset)
        page = [(str(r.id), str((r.payload or {}).get("caption", ""))) for r in records]
        return page, None if next_offset is None else str(next_offset)

    # -- reads -----------------------------------------------------------------

    def points(self, collection: str, ids: Sequence[str], *, vectors: bool = False) -> dict[str, StoredPoint]:
        """{pair id: payload and named-vector sizes (with `vectors`)} of the points among `ids` in `collection`,
        read in batched calls (coarse hits read their caption, url, ... from `texts` so)."""
        self._provenance()
        wanted = list(dict.fromkeys(canonical_ids(ids)))
        out: dict[str, StoredPoint] = {}
        for start in range(0, len(wanted), READ_CHUNK):
            with self._calls("reading points"):
                out.update(stored_points(self._read_points(collection, wanted[start:start + READ_CHUNK],
                                                           vectors=vectors)))
        return out

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The ids among `ids` present in both collections."""
        wanted = list(dict.fromkeys(canonical_ids(ids)))
        if not wanted:
            return set()
        self._provenance()
        present: list[set[str]] = []
        for name in self._presence_collections():
            found: set[str] = set()
            for start in range(0, len(wanted), READ_CHUNK):
                with self._calls("looking up ids"):
                    found.update(str(pid) for pid in self._present_ids(name, wanted[start:start + READ_CHUNK]))
            present.append(found)
        return set.intersection(*present)

    def _presence_collections(self) -> tuple[str, ...]:
        """Where existing_ids looks: both collections (a store may narrow it where the write order allows)."""
        return COLLECTIONS

    def coarse_search(self, queries: np.ndarray, *, limit: int, hnsw_ef: int | None = None,
                      corpora: Sequence[str] | None = None) -> list[list[ImageHit]]:
        """queries (B, coarse_dim): the `limit` nearest images of each, one batched call.

        `hnsw_ef` is the graph search's beam width (None: the one the store measured for its recall
        target, `search_beam`); wider finds more of the exact neighbours.
        `corpora` keeps only pairs of those corpora (a payload filter on `corpus`, indexed).
        A quantized store searches its quantized copy for max(limit, K) × oversampling candidates
        and rescores them with the original vectors (Storage; K: the beam target's limit).
        """
        matrix = check_queries(queries, self._provenance(), "coarse", self.location)
        limit = check_limit(limit)
        if len(matrix) == 0:
            return []
        if corpora is not None and (isinstance(corpora, str) or not all(isinstance(c, str) for c in corpora)):
            raise ValueError("corpora must be a sequence of corpus names")
        oversampling = self.storage().oversampling
        # A quantized copy ranks coarsely: rescoring 4 × 20 binary candidates found 0.73 of the exact top 20
        # (tiny, 20,000 clustered pairs), 4 × 128 found 0.9995 of it. Fewer than K hits come from the pool
        # of K, the size the beam was calibrated for.
        pool = max(limit, self.beam_target.limit) if oversampling else limit
        with self._calls("coarse search"):
            results = self._query_images(matrix, limit=pool, hnsw_ef=self.search_beam(pool, hnsw_ef),
                                         corpora=list(corpora) if corpora else None, oversampling=oversampling)
        return [sorted_by_score([ImageHit(pair_id=str(p.id), score=float(p.score)) for p in points])[:limit]
                for points in results]

    # -- the beam ----------------------------------------------------------------

    def search_beam(self, limit: int, hnsw_ef: int | None = None) -> int:
        """The beam a coarse search of `limit` hits uses: `hnsw_ef` if given (XMORE_HNSW_EF), else
        the smallest the store measured to reach its recall target (beam.py), at least `limit`."""
        return self.beam_choice(limit, hnsw_ef).hnsw_ef

    def beam_choice(self, limit: int, hnsw_ef: int | None = None) -> BeamChoice:
        """`search_beam`, with where it comes from and the recall measured at it."""
        if hnsw_ef is not None:
            return BeamChoice(hnsw_ef=hnsw_ef, source="setting")
        calibration = self.beam_calibration()
        if calibration is None:
            return BeamChoice(hnsw_ef=max(UNCALIBRATED_BEAM, limit), source="uncalibrated")
        choice = calibration.choose(self.beam_target.recall)
        return BeamChoice(hnsw_ef=max(choice.hnsw_ef, limit), source=choice.source, recall=choice.recall,
                          reached=choice.reached)

    def beam_calibration(self) -> BeamCalibration | None:
        """The beam calibration optimize() recorded, if any (read once per store object)."""
        if self._beam is False:
            self._provenance()
            with self._calls("reading the store record"):
                self._beam = BeamCalibration.from_record(self._metadata(IMAGES).get(BEAM_KEY))
        return self._beam

    def calibrate_beam(self) -> BeamCalibration | None:
        """Measure coarse recall@K against exact search at each beam of the ladder, and record it.

        PROBES stored vectors are the queries (beam.py says how they are chosen and why);
        None, and no calibration left recorded, for an empty `images`.
        """
        self._require_open()
        started = time.perf_counter()
        with self._calls("counting points"):
            points = int(self._count(IMAGES, None))
        probes, matrix = self._probe_vectors(min(PROBES, points))
        if not probes:
            self._record_beam(None)
            return None
        limit = self._calibration_limit(points)
        oversampling = self.storage().oversampling
        with self._calls("measuring the search beam"):
            exact = [without_own([str(p.id) for p in hits], own, limit) for own, hits in zip(
                probes, self._query_images(matrix, limit=limit + 1, hnsw_ef=None, corpora=None, oversampling=None,
                                           exact=True), strict=True)]
            curve: dict[int, float] = {}
            for beam in ladder(limit):
                found = self._query_images(matrix, limit=limit + 1, hnsw_ef=beam, corpora=None,
                                           oversampling=oversampling)
                curve[beam] = mean_recall([without_own([str(p.id) for p in hits], own, limit)
                                           for own, hits in zip(probes, found, strict=True)], exact)
                if curve[beam] >= ENOUGH_RECALL:
                    break
        calibration = BeamCalibration(limit=limit, probes=len(probes), points=points, oversampling=oversampling,
                                      recall=curve, seconds=time.perf_counter() - started)
        self._record_beam(calibration)
        return calibration

    def _record_beam(self, calibration: BeamCalibration | None) -> None:
        with self._calls("reading the store record"):
            record = self._metadata(IMAGES)
        if calibration is None and BEAM_KEY not in record:
            return
        if calibration is None:
            del record[BEAM_KEY]
        else:
            record[BEAM_KEY] = calibration.to_record()
        with self._calls("recording the search beam"):
            self._set_metadata(IMAGES, record)
        self._beam = calibration

    def _calibration_limit(self, points: int) -> int:
        """The K measured: the target's, or all other points of a store smaller than that."""
        return max(1, min(self.beam_target.limit, points - 1))

    def _beam_current(self) -> bool:
        """Whether the recorded calibration was measured on this many points, at this K and oversampling:
        rerunning optimize() with nothing new to build then costs no measurement."""
        calibration = self.beam_calibration()
        if calibration is None:
            return False
        with self._calls("counting points"):
            points = int(self._count(IMAGES, None))
        return (calibration.points, calibration.limit, calibration.oversampling) == (
            points, self._calibration_limit(points), self.storage().oversampling)

    def _probe_vectors(self, count: int) -> tuple[list[str], np.ndarray]:
        """`count` stored image vectors and their ids, in id order from PROBE_START (wrapping to the first id)."""
        ids: list[str] = []
        rows: list[object] = []
        offset: str | None = PROBE_START
        while len(ids) < count:
            with self._calls("reading probe vectors"):
                records, next_offset = self._sample_vectors(IMAGES, COARSE_VECTOR, limit=count - len(ids),
                                                            offset=offset)
            for record in records:
                pid = str(record.id)
                if pid in ids:  # wrapped around to where the walk started
                    return ids, np.asarray(rows, dtype=np.float32)
                ids.append(pid)
                rows.append((record.vector or {})[COARSE_VECTOR])
            if next_offset is None:
                if offset is None:
                    break
                offset = None  # the end of the id order: go on from the first id
            else:
                offset = next_offset
        if not ids:  # an empty collection (a corpus whose rows were all skipped): nothing to probe with
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, np.asarray(rows, dtype=np.float32).reshape(len(ids), -1)

    def fine_search(
        self, queries: np.ndarray, candidates: Sequence[Sequence[str]], *, limit: int
    ) -> list[list[CaptionHit]]:
        """queries (B, fine_dim): the `limit` nearest captions among candidates[i] for query i."""
        matrix = check_queries(queries, self._provenance(), "fine", self.location)
        limit = check_limit(limit)
        groups = check_candidates(candidates, len(matrix))
        asked = [i for i, group in enumerate(groups) if group]
        out: list[list[CaptionHit]] = [[] for _ in groups]
        if not asked:
            return out
        with self._calls("fine search"):
            results = self._query_texts(matrix[asked], [groups[i] for i in asked], limit=limit)
        for i, points in zip(asked, results, strict=True):
            out[i] = sorted_by_score([caption_hit(p) for p in points])
        return out

    def caption_cache_search(self, queries: np.ndarray, *, limit: int) -> list[list[ImageHit]]:
        """queries (B, cache dim), the classifier's text embeddings: the `limit` pairs whose cached caption
        embedding is nearest to each, as (pair_id, score) hits, by an exact scan of `texts` (RECO's text side).

        StoreMismatchError (naming `xmore cache-captions`) when there is no caption cache.
        """
        matrix = check_cache_queries(queries, self.caption_cache(), self.location)
        limit = check_limit(limit)
        if len(matrix) == 0:
            return []
        with self._calls("searching the caption cache"):
            results = self._query_caption_cache(matrix, limit=limit)
        return [sorted_by_score([ImageHit(pair_id=str(p.id), score=float(p.score)) for p in points])
                for points in results]

    def image_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """(n, coarse dim) the stored image embeddings of `ids` (vector "coarse"); NaN rows where none is stored."""
        dim = self._provenance().coarse_dim
        wanted = canonical_ids(ids)
        distinct = list(dict.fromkeys(wanted))
        records: list[object] = []
        for start in range(0, len(distinct), READ_CHUNK):
            with self._calls("reading image embeddings"):
                records += self._read_vectors(IMAGES, distinct[start:start + READ_CHUNK], COARSE_VECTOR)
        return cached_rows(wanted, records, dim, vector=COARSE_VECTOR)

    def corpus_pairs(self, corpus: str, *, limit: int, offset: str | None = None
                     ) -> tuple[list[tuple[str, str]], str | None]:
        """A page of (pair id, key) of one corpus, in id order, and the next page's offset (None at the end)."""
        self._provenance()
        with self._calls("listing a corpus' pairs"):
            records, next_offset = self._scroll_corpus(TEXTS, corpus, limit=check_limit(limit), offset=offset)
        page = [(str(r.id), str((r.payload or {}).get("key", ""))) for r in records]
        return page, None if next_offset is None else str(next_offset)

    def counts(self) -> dict[str, int]:
        return self._counts(None)

    def corpus_counts(self, corpus: str) -> dict[str, int]:
        """Points of one corpus in each collection (a count under a payload filter on `corpus`)."""
        return self._counts(corpus)

    def _counts(self, corpus: str | None) -> dict[str, int]:
        self._provenance()
        out = {}
        for name in COLLECTIONS:
            with self._calls("counting points"):
                out[name] = int(self._count(name, corpus))
        return out

    # -- the index -------------------------------------------------------------

    @contextlib.contextmanager
    def bulk_load(self, *, exclusive: bool = True) -> Iterator[None]:
        """A context for a large load: graph building deferred, built once, by optimize(), at the end.
        `exclusive`: nothing but the load uses the store meanwhile, so its writes may go their fastest
        way (bulk_writes()).

        The marker set first stays if the process dies before the build is done, so
        the store knows (index_state) and the next optimize_if_needed() builds it.
        """
        self._require_open()
        self._mark_build(pending=True)
        with self._deferred_indexing(), self.bulk_writes() if exclusive else contextlib.nullcontext():
            yield
        self.optimize()

    def bulk_writes(self) -> AbstractContextManager[None]:
        """A context for many upserts in a row (an exclusive bulk_load() opens it; an ingest without the
        final build too). A store may write differently meanwhile (Qdrant Edge: `texts` from a second
        process), and only upserts and existing_ids() are sure to work inside it: a store that answers
        queries during the load (the service's) does not open it."""
        return contextlib.nullcontext()

    def optimize(self) -> None:
        """Build the index now (Edge: in this call; a server: starts it in the background)."""
        self._require_open()
        self._mark_build(pending=True)
        with self._calls("optimizing"):
            self._build_indexes()
        self._mark_build(pending=False)
        if self._calibration_due() and not self._beam_current():
            self.calibrate_beam()

    def optimize_if_needed(self) -> bool:
        """Finish a deferred or interrupted index build; True if there was one."""
        if not any(state.needs_build for state in self.index_state().values()):
            return False
        self.optimize()
        return True

    def index_state(self) -> dict[str, IndexState]:
        """Each collection's points, indexed vectors, and whether a build is owed."""
        self._provenance()
        with self._calls("reading the store record"):
            pending = bool(self._metadata(IMAGES).get(BUILD_PENDING))
        out = {}
        for name in COLLECTIONS:
            with self._calls("reading the index state"):
                points, indexed, deferred = self._index_counts(name)
            graph = LAYOUT[name].graph
            out[name] = IndexState(points=int(points), indexed=None if indexed is None else int(indexed),
                                   graph=graph, needs_build=bool(deferred or (graph and pending)))
        return out

    def _mark_build(self, *, pending: bool) -> None:
        with self._calls("reading the store record"):
            record = self._metadata(IMAGES)
        if bool(record.get(BUILD_PENDING)) == pending:
            return
        if pending:
            record[BUILD_PENDING] = True
        else:
            record.pop(BUILD_PENDING, None)
        with self._calls("recording the index build"):
            self._set_metadata(IMAGES, record)

    def _require_open(self) -> None:
        if not self._checked:
            raise StoreError(f"the store at {self.location} was not opened: call open() or init() before writing")

    # -- engine hooks ----------------------------------------------------------

    @contextlib.contextmanager
    def _calls(self, action: str) -> Iterator[None]:
        """The engine's failures, while doing `action`, as StoreError subclasses, one line each."""
        try:
            yield
        except StoreError:
            raise
        except Exception as error:
            raise self._translate(error, action) from error

    @abstractmethod
    def _translate(self, error: Exception, action: str) -> StoreError:
        """Our error for an engine's failure while doing `action`."""

    @abstractmethod
    def _provenance(self) -> Provenance:
        """What the collections hold, attaching to them first; StoreNotInitializedError if absent."""

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _store_record(self) -> dict | None:
        """The xmore record of the store (models, storage, ...), None where there are no collections."""

    @abstractmethod
    def _metadata(self, collection: str) -> dict:
        """A copy of the xmore record kept with `collection` (caption cache, build marker)."""

    @abstractmethod
    def _set_metadata(self, collection: str, record: dict) -> None:
        """Replace the xmore record kept with `collection`, durably."""

    @abstractmethod
    def _write_points(self, collection: str, ids: list[str], vectors: dict[str, np.ndarray],
                      payloads: list[dict]) -> None:
        """Upsert points: named vectors (float32, rows match ids) and payloads, in as many engine calls
        as the engine wants."""

    @abstractmethod
    def _flush(self, collection: str) -> None:
        """Make the writes to `collection` durable (a no-op where each write already waits)."""

    @abstractmethod
    def _write_vectors(self, collection: str, ids: list[str], name: str, matrix: np.ndarray) -> None:
        """Set the named vector of existing points, durably."""

    @abstractmethod
    def _replace_caption_vector(self, dim: int, *, drop: bool) -> None:
        """Create the caption-cache vector in `texts` (`dim`-d, cosine), dropping the old one first if `drop`."""

    @abstractmethod
    def _delete_corpus(self, collection: str, corpus: str) -> None: ...

    @abstractmethod
    def _present_ids(self, collection: str, ids: list[str]) -> Iterable[object]:
        """The ids among `ids` that `collection` holds."""

    @abstractmethod
    def _read_points(self, collection: str, ids: list[str], *, vectors: bool) -> Sequence[object]:
        """Records (.id, .payload; .vector {name: row} if `vectors`) of the points among `ids` that exist."""

    @abstractmethod
    def _read_vectors(self, collection: str, ids: list[str], name: str) -> Sequence[object]:
        """Records (.id, .vector {name: row}) of the points among `ids` that exist."""

    @abstractmethod
    def _scroll_without_vector(self, collection: str, name: str, *, limit: int,
                               offset: str | None) -> tuple[Sequence[object], object | None]:
        """A page of records (.id, .payload with "caption") lacking vector `name`, and the next offset."""

    @abstractmethod
    def _query_images(self, matrix: np.ndarray, *, limit: int, hnsw_ef: int | None,
                      corpora: list[str] | None, oversampling: float | None,
                      exact: bool = False) -> list[Sequence[object]]:
        """Per query row, scored points (.id, .score) of `images`, in one batched engine call; with
        `oversampling`, from the quantized copy, limit × oversampling candidates rescored with the
        originals. `exact`: a full scan of the originals instead (the beam calibration's truth)."""

    @abstractmethod
    def _sample_vectors(self, collection: str, name: str, *, limit: int,
                        offset: str | None) -> tuple[Sequence[object], object | None]:
        """A page of records (.id, .vector {name: row}) in id order from `offset`, and the next offset."""

    def _calibration_due(self) -> bool:
        """Whether optimize() should measure the beam now: the graph it built is complete (Edge builds it
        within the call)."""
        return True

    @abstractmethod
    def _query_texts(self, matrix: np.ndarray, groups: list[list[str]], *, limit: int) -> list[Sequence[object]]:
        """Per query row, scored points (.id, .score, .payload) of `texts` among its group of ids, exactly."""

    @abstractmethod
    def _query_caption_cache(self, matrix: np.ndarray, *, limit: int) -> list[Sequence[object]]:
        """Per query row, scored points (.id, .score) of `texts` by the caption-cache vector, exactly."""

    @abstractmethod
    def _scroll_corpus(self, collection: str, corpus: str, *, limit: int,
                       offset: str | None) -> tuple[Sequence[object], object | None]:
        """A page of records (.id, .payload with "key") of one corpus, and the next offset."""

    @abstractmethod
    def _count(self, collection: str, corpus: str | None) -> int:
        """Exact point count, of one corpus if given."""

    @abstractmethod
    def _index_counts(self, collection: str) -> tuple[int, int | None, bool]:
        """(points, indexed vectors or None without an index, whether the engine itself owes a build)."""

    def _deferred_indexing(self) -> AbstractContextManager[None]:
        """A context during which the engine builds no index (a no-op where writes never index)."""
        return contextlib.nullcontext()

    @abstractmethod
    def _build_indexes(self) -> None:
        """Build (or start building) the index of every collection."""


_Points = tuple[list[str], dict[str, np.ndarray], list[dict]]  # ids, named vectors (rows match ids), payloads


def _nothing_to_finish() -> None:
    """A write done when it was begun."""


def _joined(parts: list[_Points]) -> Iterator[_Points]:
    """Neighbouring parts with the same named vectors joined: one engine write for each run of them."""
    for _, group in itertools.groupby(parts, key=lambda part: tuple(part[1])):
        run = list(group)
        if len(run) == 1:
            yield run[0]
            continue
        yield ([pid for ids, _, _ in run for pid in ids],
               {name: np.concatenate([vectors[name] for _, vectors, _ in run]) for name in run[0][1]},
               [payload for _, _, payloads in run for payload in payloads])


# Re-exported: older imports name these here.
__all__ = ["COARSE_VECTOR", "FINE_VECTOR", "IMAGES", "TEXTS", "VectorStore", "pair_id", "short"]
