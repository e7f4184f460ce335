"""The embedded backend: two Qdrant Edge shards in-process, one process per store.

Layout under the store path (`<home>/qdrant`):

    xmore-store.json   what built the collections (written by init): the models and
                       the storage (profile, HNSW m and ef_construct, corpus index);
                       the caption cache, and the index-build marker (written atomically)
    images/            EdgeShard, named vector "coarse", an HNSW graph, the quantized copy
                       of a compact or tiny store
    texts/             EdgeShard, named vector "fine", no graph (m=0): only ever
                       searched under a has_id filter, which touches only the listed points

Points are searchable as soon as they are written; the HNSW graph of `images`
is built by optimize(), which ingest calls at its end. The shared flow is in
base.py; this module holds the engine calls.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from ..errors import StoreError, StoreLockedError, StoreMismatchError, StoreNotInitializedError
from ..files import write_atomically
from . import texts_writer
from .base import VectorStore, _joined, _Points
from .beam import BeamTarget
from .checks import check_provenance, short
from .storage import STORAGE_KEY, Storage, StorageRequest
from .types import CAPTION_VECTOR, COLLECTIONS, IMAGES, LAYOUT, TEXTS, Provenance

RECORD_NAME = "xmore-store.json"
LOCK_NAME = "xmore.lock"
TEXTS_WRITER_EXIT_SECONDS = 120  # a close flushes nothing new (every write was flushed); opening and closing is quick
RECORD_FORMAT = 1
FULL_SCAN_THRESHOLD_KB = 10_000
WRITE_CHUNK = 512


class EdgeStore(VectorStore):
    """Qdrant Edge shards under `path`. Constructing touches nothing; init() or open() does."""

    backend = "qdrant-edge"
    concurrent_calls = True  # an EdgeShard takes calls from several threads (ingest looks ids up while it writes)

    def __init__(self, path: str | Path, storage: StorageRequest | None = None, beam: BeamTarget | None = None):
        self.path = Path(path)
        super().__init__(str(self.path), storage, beam)
        self._shards: dict[str, qe.EdgeShard] | None = None
        self._lock_fd: int | None = None
        self._texts_writer: subprocess.Popen | None = None  # owns `texts` during a bulk load

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
        storage = self._settle_storage(self.stored_storage())
        self._check_shard_sizes(provenance)
        self.path.mkdir(parents=True, exist_ok=True)
        with self._locked():  # checked: from here on this process writes
            if self.stored_provenance() is None:
                self._write_record({"format": RECORD_FORMAT, "backend": self.backend,
                                    "provenance": provenance.to_dict(), STORAGE_KEY: storage.to_dict()})
            created = [name for name in COLLECTIONS if not self._shard_exists(name)]
            self._load_shards(create=provenance)
            for name in COLLECTIONS if storage.corpus_index else ():  # counting, deleting and searching by corpus
                shard = self._shard(name)
                with self._calls(f"indexing the corpus field of {name!r}"):
                    if "corpus" not in (shard.info().payload_schema or {}):
                        shard.update(qe.UpdateOperation.create_field_index("corpus", qe.PayloadSchemaType.Keyword))
                        shard.flush()
        self._checked = True
        return bool(created)

    def open(self, provenance: Provenance) -> None:
        stored = self.stored_provenance()
        if stored is None:
            raise StoreNotInitializedError(f"no collections at {self.location}: run `xmore init`")
        check_provenance(stored, provenance, self.location)
        self._settle_storage(self.stored_storage())
        self._check_shard_sizes(provenance)
        with self._locked():
            self._attach()
        self._checked = True

    def _close(self) -> None:
        if self._texts_writer is not None:
            self._stop_texts_writer()
        shards, self._shards = self._shards, None
        try:
            self._close_shards(shards)
        finally:
            self._unlock()

    def _close_shards(self, shards: dict[str, qe.EdgeShard] | None) -> None:
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

    # -- engine hooks (see base.py) ----------------------------------------

    def _provenance(self) -> Provenance:
        self._attach()
        return self._stored

    def _store_record(self) -> dict | None:
        return self._record()

    def _metadata(self, collection: str) -> dict:
        record = self._record()  # one record for both shards
        return dict(record) if isinstance(record, dict) else {}

    def _set_metadata(self, collection: str, record: dict) -> None:
        self._write_record(record)

    def _write_points(self, collection: str, ids: list[str], vectors: dict[str, np.ndarray],
                      payloads: list[dict]) -> None:
        shard = self._shard(collection)
        for points in _engine_points(ids, vectors, payloads):
            shard.update(qe.UpdateOperation.upsert_points(points))

    def _flush(self, collection: str) -> None:
        self._shard(collection).flush()

    def _write_vectors(self, collection: str, ids: list[str], name: str, matrix: np.ndarray) -> None:
        shard = self._shard(collection)
        shard.update(qe.UpdateOperation.update_vectors(
            [qe.PointVectors(pid, {name: v}) for pid, v in zip(ids, engine_rows(matrix), strict=True)]))
        shard.flush()

    def _replace_caption_vector(self, dim: int, *, drop: bool) -> None:
        shard = self._shard(TEXTS)
        if drop:
            shard.update(qe.UpdateOperation.delete_vector_name(CAPTION_VECTOR))
        # The datatype follows the storage; the placement cannot: a vector added later takes the engine's default.
        shard.update(qe.UpdateOperation.create_dense_vector(CAPTION_VECTOR, dim, qe.Distance.Cosine,
                                                            datatype=_datatype(self.storage())))
        shard.flush()

    def _delete_corpus(self, collection: str, corpus: str) -> None:
        shard = self._shard(collection)
        shard.update(qe.UpdateOperation.delete_points_by_filter(_corpus_filter(corpus)))
        shard.flush()

    def _present_ids(self, collection: str, ids: list[str]) -> list[object]:
        return [r.id for r in self._shard(collection).retrieve(ids, with_payload=False, with_vector=False)]

    def _read_points(self, collection: str, ids: list[str], *, vectors: bool) -> list[qe.Record]:
        return self._shard(collection).retrieve(ids, with_payload=True, with_vector=vectors)

    def _read_vectors(self, collection: str, ids: list[str], name: str) -> list[qe.Record]:
        return self._shard(collection).retrieve(ids, with_payload=False, with_vector=[name])

    def _scroll_without_vector(self, collection: str, name: str, *, limit: int, offset: str | None):
        return self._shard(collection).scroll(qe.ScrollRequest(
            offset=offset, limit=limit, filter=qe.Filter(must_not=[qe.HasVectorCondition(name)]),
            with_payload=["caption"], with_vector=False))

    def _query_images(self, matrix: np.ndarray, *, limit: int, hnsw_ef: int | None,
                      corpora: list[str] | None, oversampling: float | None,
                      exact: bool = False) -> list[list[qe.ScoredPoint]]:
        # One query_batch: the engine holds the GIL through it (threads gain nothing, README, Performance).
        rescored = qe.QuantizationSearchParams(rescore=True, oversampling=oversampling) if oversampling else None
        params = qe.SearchParams(hnsw_ef=hnsw_ef, quantization=rescored) if hnsw_ef or rescored else None
        if exact:
            params = qe.SearchParams(exact=True, quantization=qe.QuantizationSearchParams(ignore=True))
        vector = LAYOUT[IMAGES].vector
        where = qe.Filter(must=[qe.FieldCondition(key="corpus", match=qe.MatchAny(corpora))]) if corpora else None
        return self._shard(IMAGES).query_batch(qe.QueryBatchRequest([
            qe.QueryRequest(limit=limit, query=qe.Query.Nearest(row, using=vector), filter=where,
                            params=params, with_payload=False, with_vector=False)
            for row in engine_rows(matrix)
        ]))

    def _sample_vectors(self, collection: str, name: str, *, limit: int, offset: str | None):
        return self._shard(collection).scroll(qe.ScrollRequest(
            offset=offset, limit=limit, with_payload=False, with_vector=[name]))

    def _query_texts(self, matrix: np.ndarray, groups: list[list[str]], *, limit: int) -> list[list[qe.ScoredPoint]]:
        vector = LAYOUT[TEXTS].vector
        return self._shard(TEXTS).query_batch(qe.QueryBatchRequest([
            qe.QueryRequest(
                limit=limit, query=qe.Query.Nearest(row, using=vector),
                filter=qe.Filter(must=[qe.HasIdCondition(set(group))]),
                params=qe.SearchParams(exact=True),  # no graph here anyway; makes it explicit
                with_payload=True, with_vector=False,
            )
            for row, group in zip(engine_rows(matrix), groups, strict=True)
        ]))

    def _query_caption_cache(self, matrix: np.ndarray, *, limit: int) -> list[list[qe.ScoredPoint]]:
        return self._shard(TEXTS).query_batch(qe.QueryBatchRequest([
            qe.QueryRequest(limit=limit, query=qe.Query.Nearest(row, using=CAPTION_VECTOR),
                            params=qe.SearchParams(exact=True), with_payload=False, with_vector=False)
            for row in engine_rows(matrix)
        ]))

    def _scroll_corpus(self, collection: str, corpus: str, *, limit: int, offset: str | None):
        return self._shard(collection).scroll(qe.ScrollRequest(
            offset=offset, limit=limit, filter=_corpus_filter(corpus), with_payload=["key"], with_vector=False))

    def _count(self, collection: str, corpus: str | None) -> int:
        request = qe.CountRequest(exact=True, filter=None if corpus is None else _corpus_filter(corpus))
        return self._shard(collection).count(request)

    def _index_counts(self, collection: str) -> tuple[int, int | None, bool]:
        info = self._shard(collection).info()
        return info.points_count, info.indexed_vectors_count, False  # the record's marker says the rest

    def _build_indexes(self) -> None:
        for name in COLLECTIONS:
            self._shard(name).optimize()

    def _translate(self, error: Exception, action: str) -> StoreError:
        """Qdrant Edge raises bare Exceptions: a held lock is told apart by its message."""
        lowered = str(error).lower()
        if "wouldblock" in lowered or "wal" in lowered or "lock" in lowered:
            return StoreLockedError(locked_message(self.location))
        return StoreError(f"Qdrant Edge failed while {action} at {self.location}: {short(error)}")

    # -- shards and the record ---------------------------------------------

    def _shard(self, name: str) -> qe.EdgeShard:
        shards = self._attach()
        if name not in shards and self._texts_writer is not None:
            raise StoreError(f"the {name} collection at {self.location} is being written by the bulk load's "
                             "writer process; it is back once the load ends")
        return shards[name]

    # -- bulk loads: `texts` written by a second process -------------------------

    @contextlib.contextmanager
    def bulk_writes(self) -> Iterator[None]:
        """For a bulk load, hand `texts` to a writer process (texts_writer.py says why), and take it back."""
        self._start_texts_writer()
        try:
            yield
        finally:
            self._stop_texts_writer()

    def _start_texts_writer(self) -> None:
        shards = self._attach()
        with self._calls("handing the texts collection to its writer process"):
            shards.pop(TEXTS).close()
        try:
            self._texts_writer = subprocess.Popen(
                [sys.executable, texts_writer.__file__, str(self.path / TEXTS)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(self._lock_fd,))
        except OSError as error:
            self._load_shards(create=None)
            raise StoreError(f"could not start the writer process for {self.location}: {short(error)}") from None

    def _stop_texts_writer(self) -> None:
        """Close the writer's shard and wait for it to end (killed if it does not), then reopen `texts` here."""
        writer, self._texts_writer = self._texts_writer, None
        if writer is None:
            return
        try:
            with contextlib.suppress(StoreError):
                self._ask(writer, ("close",))
            try:
                writer.wait(timeout=TEXTS_WRITER_EXIT_SECONDS)
            except subprocess.TimeoutExpired:
                writer.kill()
                writer.wait()
        finally:
            for pipe in (writer.stdin, writer.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
            if self._shards is not None:
                self._load_shards(create=None)

    def _send(self, writer: subprocess.Popen, request: tuple, matrices: dict[str, np.ndarray] | None = None) -> None:
        """A request, then the matrices' float32 bytes (texts_writer.py reads them by the shapes it names)."""
        try:
            pickle.dump(request, writer.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            for matrix in (matrices or {}).values():
                writer.stdin.write(memoryview(np.ascontiguousarray(matrix, dtype=np.float32)).cast("B"))
            writer.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._writer_gone(writer) from None

    def _answer(self, writer: subprocess.Popen) -> int:
        try:
            status, value = pickle.load(writer.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            raise self._writer_gone(writer) from None
        if status != "ok":
            raise StoreError(f"Qdrant Edge failed while writing captions at {self.location}: {value}")
        return int(value)

    def _answers(self, writer: subprocess.Popen, count: int, *, raise_first: bool = True) -> None:
        """Read `count` answers, all of them even after a failure (they come in order), then raise the first."""
        failure: StoreError | None = None
        for _ in range(count):
            try:
                self._answer(writer)
            except StoreError as error:
                failure = failure or error
                if writer.poll() is not None:
                    break  # gone: nothing more will come
        if failure is not None and raise_first:
            raise failure

    def _ask(self, writer: subprocess.Popen, request: tuple) -> int:
        self._send(writer, request)
        return self._answer(writer)

    def _writer_gone(self, writer: subprocess.Popen) -> StoreError:
        code = writer.poll()
        return StoreError(f"the writer process of the texts collection at {self.location} ended"
                          + (f" (exit status {code})" if code is not None else "")
                          + ": captions written since the last completed batch are not stored")

    def _begin_pairs(self, texts: list[_Points], images: list[_Points]) -> Callable[[], None]:
        """Inside bulk_writes(): the texts go to the writer process (which writes and flushes them while this
        one builds the image points, and finishes the previous lot's images); the images are written by the
        returned function, once the writer has said the texts are durable (the order the base keeps)."""
        writer = self._texts_writer
        if writer is None:
            return super()._begin_pairs(texts, images)
        sent = 0
        try:
            for ids, vectors, payloads in _joined(texts):
                shapes = {name: (len(ids), int(matrix.shape[1])) for name, matrix in vectors.items()}
                self._send(writer, ("write", ids, shapes, payloads), vectors)
                sent += 1
            with self._calls("writing images"):
                calls = [qe.UpdateOperation.upsert_points(points) for points in _image_points(images)]
        except BaseException:
            self._answers(writer, sent, raise_first=False)  # every request answered: the next lot reads its own
            raise

        def finish() -> None:
            self._answers(writer, sent)
            with self._calls("writing images"):
                shard = self._shard(IMAGES)
                for call in calls:
                    shard.update(call)
                shard.flush()
        return finish

    def _presence_collections(self) -> tuple[str, ...]:
        # While the writer process owns `texts`: an image is written only once its caption is durable,
        # so a pair whose image is present is whole.
        return (IMAGES,) if self._texts_writer is not None else COLLECTIONS

    def _attach(self) -> dict[str, qe.EdgeShard]:
        """Load both shards once (reads need no configured models; writes need open())."""
        if self._shards is None:
            self._load_shards(create=None)
        return self._shards

    def _load_shards(self, *, create: Provenance | None) -> None:
        """Load the shards not loaded yet; create absent ones from `create`, if given (with the storage
        init settled)."""
        stored = self.stored_provenance()
        if stored is None:
            raise StoreNotInitializedError(f"no collections at {self.location}: run `xmore init`")
        with self._locked():
            self._load_shards_locked(stored, create)

    def _load_shards_locked(self, stored: Provenance, create: Provenance | None) -> None:
        shards = dict(self._shards or {})
        opened = []
        try:
            for name in COLLECTIONS:
                if name in shards:
                    continue
                folder = str(self.path / name)
                if self._shard_exists(name):
                    with self._calls(f"opening the {name} collection"):
                        shards[name] = qe.EdgeShard.load(folder)
                elif create is not None:
                    with self._calls(f"creating the {name} collection"):
                        shards[name] = qe.EdgeShard.create(folder, _config(name, create, self._storage))
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

    def _lock(self) -> None:
        """Hold the store for this process, as its shards' write-ahead logs did (stores made without
        one have no engine lock): an exclusive flock on `xmore.lock`, released on close or exit."""
        if self._lock_fd is not None:
            return
        try:
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(f"cannot lock the store at {self.location}: {short(error)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(locked_message(self.location)) from None
        self._lock_fd = fd

    @contextlib.contextmanager
    def _locked(self):
        """The lock for what follows; given back if it fails before any shard is open."""
        self._lock()
        try:
            yield
        except BaseException:
            if self._shards is None:
                self._unlock()
            raise

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def _shard_exists(self, name: str) -> bool:
        folder = self.path / name
        return (folder / "edge_config.json").exists() or (folder / "segments").is_dir()

    def _check_shard_sizes(self, provenance: Provenance) -> None:
        """Cross-check the shards' own configs, read-only, before anything is written."""
        for name, (role, vector, _) in LAYOUT.items():
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

    def _write_record(self, data: dict) -> None:
        """Replace the record atomically and durably: it is the store's memory of what built it."""
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        write_atomically(self.record_path, lambda handle: handle.write(text.encode("utf-8")), durable=True)


def engine_rows(matrix: np.ndarray) -> list[array.array]:
    """The rows of a float32 matrix as the engine takes them fastest: array('f') rows convert to its
    vectors in less than half the time of the lists of Python floats tolist() makes (512 to 768
    dimensions, measured), bit for bit the same values."""
    return [array.array("f", row.tobytes()) for row in np.ascontiguousarray(matrix, dtype=np.float32)]


def _image_points(parts: list[_Points]) -> Iterator[list[qe.Point]]:
    """The engine's points of `parts`, WRITE_CHUNK a list (an update() call each)."""
    for ids, vectors, payloads in _joined(parts):
        yield from _engine_points(ids, vectors, payloads)


def _engine_points(ids: list[str], vectors: dict[str, np.ndarray], payloads: list[dict]) -> Iterator[list[qe.Point]]:
    """Points as the engine takes them, WRITE_CHUNK a list (texts_writer.py builds its own the same way: it
    runs by path, importing nothing of this package)."""
    for start in range(0, len(ids), WRITE_CHUNK):
        stop = start + WRITE_CHUNK
        rows = {name: engine_rows(matrix[start:stop]) for name, matrix in vectors.items()}
        yield [qe.Point(pid, {name: rows[name][i] for name in rows}, payload)
               for i, (pid, payload) in enumerate(zip(ids[start:stop], payloads[start:stop], strict=True))]


def locked_message(location: str) -> str:
    return (
        f"the embedded store at {location} is open in another process; Qdrant Edge allows one "
        "process per store: stop the other process, or run a Qdrant server and set "
        "XMORE_QDRANT_URL for concurrent use"
    )


def _config(name: str, provenance: Provenance, storage: Storage) -> qe.EdgeConfig:
    """The shard's engine config. What `exact` leaves at the engine's default is not written, so an
    `exact` shard is configured as before storage profiles existed."""
    role, vector, graph = LAYOUT[name]
    return qe.EdgeConfig(
        vectors={vector: qe.EdgeVectorParams(
            size=getattr(provenance, f"{role}_dim"), distance=qe.Distance.Cosine,
            on_disk=True if storage.vectors_on_disk else None, datatype=_datatype(storage),
            quantization_config=_quantization(storage) if graph else None)},
        hnsw_config=qe.HnswIndexConfig(m=storage.hnsw_m if graph else 0, ef_construct=storage.hnsw_ef_construct,
                                       full_scan_threshold=FULL_SCAN_THRESHOLD_KB),
        # No write-ahead log: every write of ours counts as done only once flush() has returned (the
        # ingest ledger marks a unit after its flush; deletes, index and cache changes flush at once),
        # which is when a WAL-less shard is durable. The log cost 40 % of each upsert (measured) and
        # 70 to 95 MiB of memory maps in every process. Fixed at creation: older stores keep theirs.
        wal_enabled=False,
    )


def _datatype(storage: Storage) -> qe.VectorStorageDatatype | None:
    return qe.VectorStorageDatatype.Float16 if storage.datatype == "float16" else None


def _quantization(storage: Storage) -> qe.ScalarQuantizationConfig | qe.BinaryQuantizationConfig | None:
    """The quantized copy, held in RAM (always_ram) whatever the originals' placement: searches read it first."""
    if storage.quantization == "scalar":
        # quantile 0.99: the int8 range ignores the 1 % most extreme values (Qdrant's recommended setting).
        return qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, always_ram=True)
    if storage.quantization == "binary":
        return qe.BinaryQuantizationConfig(always_ram=True)
    return None


def _corpus_filter(corpus: str) -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition(key="corpus", match=qe.MatchValue(corpus))])
