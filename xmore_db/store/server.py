"""The server backend: the two collections on a Qdrant server, through qdrant-client.

`XMORE_QDRANT_URL` picks the client:

    http(s)://host:6333   a Qdrant server (concurrent use, large corpora)
    file:PATH             qdrant-client's local mode on disk: pure Python brute force,
                          one process per path; for tests and tiny corpora only
    :memory:              the same, in memory

The provenance lives in each collection's `metadata` (the images collection is
authoritative for the coarse model, texts for the fine one), and so does the
storage (storage.py: profile, HNSW m and ef_construct, corpus index), the same in
both. `texts` has no HNSW graph (m=0): it is only searched under a has_id filter,
an exact scan of the listed points. Local mode keeps the datatype and placement in
its config but stores float32 and searches by brute force, with no quantized copy
and no payload index: a compact or tiny store there answers exactly.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ..config import Settings, mask_url_password
from ..errors import (
    ConfigError,
    StoreError,
    StoreLockedError,
    StoreMismatchError,
    StoreNotInitializedError,
    StoreReadOnlyError,
    StoreUnreachableError,
)
from .base import VectorStore
from .beam import BeamTarget
from .checks import check_provenance, short
from .storage import STORAGE_KEY, Storage, StorageRequest
from .types import CAPTION_VECTOR, COLLECTIONS, IMAGES, LAYOUT, TEXTS, Provenance

METADATA_KEY = "xmore"
METADATA_FORMAT = 1
DEFAULT_TIMEOUT_S = 30
WRITE_CHUNK = 256
# Processes sending one write's chunks at once, each at least UPLOAD_CHUNKS_PER_PROCESS chunks (a process
# takes about a second to start and import qdrant-client).
UPLOAD_PROCESSES = min(4, os.cpu_count() or 1)
UPLOAD_CHUNKS_PER_PROCESS = 8
# The share of `images` a server must have indexed before optimize() measures the search beam on it.
BUILT_SHARE = 0.9
# Qdrant's default indexing threshold (KB), restored after a bulk load that found 0.
DEFAULT_INDEXING_THRESHOLD_KB = 20_000


class ServerStore(VectorStore):
    """Collections `{prefix}images` and `{prefix}texts` behind a QdrantClient (which it closes)."""

    backend = "qdrant-server"

    def __init__(self, client: QdrantClient, *, location: str, collection_prefix: str = "",
                 shard_number: int | None = None, replication_factor: int | None = None,
                 write_consistency_factor: int | None = None, storage: StorageRequest | None = None,
                 beam: BeamTarget | None = None):
        """The layout arguments apply to collections `init` creates; None leaves each to the server.
        `storage`: what the settings ask of the storage (storage.py); `beam`: of the coarse search (beam.py)."""
        super().__init__(location, storage, beam)
        self.client = client
        self.names = {name: f"{collection_prefix}{name}" for name in COLLECTIONS}
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.write_consistency_factor = write_consistency_factor

    @classmethod
    def from_settings(cls, settings: Settings, *, collection_prefix: str = "") -> ServerStore:
        url = (settings.qdrant_url or "").strip()
        storage = StorageRequest.from_settings(settings)
        beam = BeamTarget(recall=settings.recall_target, limit=settings.coarse_k)
        if url == ":memory:":
            return cls(QdrantClient(":memory:"), location=":memory:",
                       collection_prefix=collection_prefix, storage=storage, beam=beam)
        if url.startswith("file:"):
            raw = url[len("file:"):]
            if raw.startswith("//"):
                raw = raw[2:]  # file:///abs/path
            if not raw:
                raise ConfigError(
                    f"qdrant url {url!r} names no path: use file:/abs/path or file:dir"
                )
            path = Path(raw).expanduser().resolve()
            try:
                client = QdrantClient(path=str(path))
            except RuntimeError as error:
                if "already accessed" in str(error):
                    raise StoreLockedError(
                        f"the local Qdrant store at {path} is open in another process; "
                        "qdrant-client's local mode allows one process per path: stop the other "
                        "process, or run a Qdrant server and set XMORE_QDRANT_URL for "
                        "concurrent use"
                    ) from None
                raise StoreError(
                    f"cannot open the local Qdrant store at {path}: {short(error)}"
                ) from None
            return cls(client, location=f"file:{path}", collection_prefix=collection_prefix, storage=storage,
                       beam=beam)
        if url.startswith(("http://", "https://")):
            client = QdrantClient(url=url, api_key=settings.qdrant_api_key,
                                  timeout=DEFAULT_TIMEOUT_S, check_compatibility=False)
            return cls(client, location=mask_url_password(url), collection_prefix=collection_prefix,
                       shard_number=settings.qdrant_shards, replication_factor=settings.qdrant_replicas,
                       write_consistency_factor=settings.qdrant_write_consistency, storage=storage, beam=beam)
        raise ConfigError(
            f"qdrant url {url!r} is not understood: use http(s)://HOST:6333 for a server, "
            "file:PATH (qdrant-client local mode, tests and tiny corpora only) or :memory:"
        )

    # -- lifecycle ---------------------------------------------------------

    def stored_provenance(self) -> Provenance | None:
        infos = self._infos()
        if not any(infos.values()):
            return None
        provenance = {name: _metadata_provenance(info, self.names[name], self.location)
                      for name, info in infos.items() if info is not None}
        images = provenance.get(IMAGES) or provenance[TEXTS]
        texts = provenance.get(TEXTS) or provenance[IMAGES]
        return Provenance(
            coarse_model=images.coarse_model, coarse_dim=images.coarse_dim,
            coarse_fingerprint=images.coarse_fingerprint,
            fine_model=texts.fine_model, fine_dim=texts.fine_dim,
            fine_fingerprint=texts.fine_fingerprint,
        )

    def init(self, provenance: Provenance) -> bool:
        infos = self._infos()
        self._validate(infos, provenance)
        storage = self._settle_storage(self._storage_from(_store_record(infos)))
        missing = [name for name in (TEXTS, IMAGES) if infos[name] is None]
        for name in missing:
            role, vector, graph = LAYOUT[name]
            with self._calls(f"creating collection {self.names[name]!r}"):
                self.client.create_collection(
                    self.names[name],
                    vectors_config={vector: _vector_params(getattr(provenance, f"{role}_dim"), storage)},
                    quantization_config=_quantization(storage) if graph else None,
                    hnsw_config=models.HnswConfigDiff(m=storage.hnsw_m if graph else 0,
                                                      ef_construct=storage.hnsw_ef_construct),
                    metadata={METADATA_KEY: {"format": METADATA_FORMAT, "role": role,
                                             "provenance": provenance.to_dict(), STORAGE_KEY: storage.to_dict()}},
                    shard_number=self.shard_number, replication_factor=self.replication_factor,
                    write_consistency_factor=self.write_consistency_factor,
                )
        if missing:
            infos = self._infos()
            if any(not (info.config.metadata or {}).get(METADATA_KEY)
                   for name, info in infos.items() if name in missing):
                with self._calls("removing the collections just created"):
                    for name in missing:
                        self.client.delete_collection(self.names[name])
                raise StoreError(
                    f"the Qdrant server at {self.location} did not keep the collection metadata "
                    "that records which models built it: use a Qdrant server that supports "
                    "collection metadata (1.16 or newer)"
                )
        if storage.corpus_index:
            self._index_corpus_field(infos)
        self._stored, self._checked = provenance, True
        return bool(missing)

    def _index_corpus_field(self, infos: dict[str, object | None]) -> None:
        """A keyword index on `corpus`: counting and deleting a corpus filter on it.

        qdrant-client's local mode has no payload indexes (it scans), so it is skipped there.
        """
        if self._is_local:
            return
        for name, info in infos.items():
            if info is not None and "corpus" in (getattr(info, "payload_schema", None) or {}):
                continue
            with self._calls(f"indexing the corpus field of {self.names[name]!r}"):
                self.client.create_payload_index(self.names[name], "corpus",
                                                 field_schema=models.PayloadSchemaType.KEYWORD, wait=True)

    def cluster_layout(self) -> dict[str, dict[str, int | None]] | None:
        """Each collection's shards, copies and write consistency as the server reports them.

        None in local mode (it keeps one copy and reports no layout) and before `xmore init`.
        """
        if self._is_local:
            return None
        infos = self._infos()
        if not all(infos.values()):
            return None
        return {name: {"shard_number": info.config.params.shard_number,
                       "replication_factor": info.config.params.replication_factor,
                       "write_consistency_factor": info.config.params.write_consistency_factor}
                for name, info in infos.items()}

    def check_writable(self) -> None:
        """StoreReadOnlyError now if the server refuses this client's writes (its read-only API key).

        A command that also writes elsewhere (ingest registers its units in the SQL
        ledger) calls this first, so a refusal leaves nothing behind. The probe is a
        write that changes nothing: deleting the nil UUID, never a pair id (those are
        UUID5). Local mode takes no key and is always writable.
        """
        self._provenance()
        if self._is_local:
            return
        with self._calls("writing to the collections"):
            self.client.delete(self.names[IMAGES], wait=True, points_selector=models.PointIdsList(
                points=["00000000-0000-0000-0000-000000000000"]))

    @property
    def _is_local(self) -> bool:
        return self.location.startswith("file:") or self.location == ":memory:"

    @property
    def concurrent_calls(self) -> bool:
        """A server's client takes calls from several threads; local mode's is not thread-safe."""
        return not self._is_local

    def open(self, provenance: Provenance) -> None:
        infos = self._infos()
        if not any(infos.values()):
            raise StoreNotInitializedError(f"no collections at {self.location}: run `xmore init`")
        self._validate(infos, provenance)
        for name, info in infos.items():
            if info is None:
                raise StoreNotInitializedError(
                    f"no collection {self.names[name]!r} at {self.location}: run `xmore init`"
                )
        self._settle_storage(self._storage_from(_store_record(infos)))
        self._stored, self._checked = provenance, True

    def _close(self) -> None:
        with self._calls("closing the client"):
            self.client.close()

    # -- engine hooks (see base.py) ----------------------------------------

    def _store_record(self) -> dict | None:
        return _store_record(self._infos())

    def _metadata(self, collection: str) -> dict:
        info = self.client.get_collection(self.names[collection])
        return dict((info.config.metadata or {}).get(METADATA_KEY) or {})

    def _set_metadata(self, collection: str, record: dict) -> None:
        self.client.update_collection(self.names[collection], metadata={METADATA_KEY: record})

    def _write_points(self, collection: str, ids: list[str], vectors: dict[str, np.ndarray],
                      payloads: list[dict]) -> None:
        """qdrant-client's batched upload, WRITE_CHUNK points a request, each waited for; on a server,
        sent by several processes at once where there are enough chunks to repay starting them."""
        upload = functools.partial(self.client.upload_collection, self.names[collection], vectors=dict(vectors),
                                   payload=payloads, ids=ids, batch_size=WRITE_CHUNK, max_retries=0, wait=True)
        processes = 1 if self._is_local else upload_processes(len(ids))
        if processes == 1:
            upload(parallel=1)
            return
        try:
            upload(parallel=processes)
        except RuntimeError:
            # The pool says only that a worker failed; the same upload (ids fixed: it overwrites) here says why.
            upload(parallel=1)

    def _flush(self, collection: str) -> None:
        """Nothing to do: every write waited (wait=True)."""

    def _write_vectors(self, collection: str, ids: list[str], name: str, matrix: np.ndarray) -> None:
        self.client.update_vectors(self.names[collection], wait=True, points=[
            models.PointVectors(id=pid, vector={name: v}) for pid, v in zip(ids, matrix.tolist(), strict=True)])

    def _replace_caption_vector(self, dim: int, *, drop: bool) -> None:
        if drop:
            self.client.delete_vector_name(self.names[TEXTS], CAPTION_VECTOR)
        # The datatype follows the storage; the placement cannot (as on Edge): an added vector takes the default.
        self.client.create_vector_name(self.names[TEXTS], CAPTION_VECTOR, models.DenseVectorNameConfig(
            dense=models.DenseVectorConfig(size=dim, distance=models.Distance.COSINE,
                                           datatype=_datatype(self.storage()))))

    def _delete_corpus(self, collection: str, corpus: str) -> None:
        self.client.delete(self.names[collection], wait=True,
                           points_selector=models.FilterSelector(filter=_corpus_filter(corpus)))

    def _present_ids(self, collection: str, ids: list[str]) -> list[object]:
        records = self.client.retrieve(self.names[collection], ids=ids, with_payload=False, with_vectors=False)
        return [record.id for record in records]

    def _read_points(self, collection: str, ids: list[str], *, vectors: bool) -> list[object]:
        return self.client.retrieve(self.names[collection], ids=ids, with_payload=True, with_vectors=vectors)

    def _read_vectors(self, collection: str, ids: list[str], name: str) -> list[object]:
        return self.client.retrieve(self.names[collection], ids=ids, with_payload=False, with_vectors=[name])

    def _scroll_without_vector(self, collection: str, name: str, *, limit: int, offset: str | None):
        return self.client.scroll(
            self.names[collection], limit=limit, offset=offset, with_payload=["caption"], with_vectors=False,
            scroll_filter=models.Filter(must_not=[models.HasVectorCondition(has_vector=name)]))

    def _query_images(self, matrix: np.ndarray, *, limit: int, hnsw_ef: int | None,
                      corpora: list[str] | None, oversampling: float | None,
                      exact: bool = False) -> list[list[object]]:
        # One request for the batch: a server spreads it over its own cores. Local mode stays serial,
        # as its client is not thread-safe.
        rescored = (models.QuantizationSearchParams(rescore=True, oversampling=oversampling)
                    if oversampling else None)
        params = models.SearchParams(hnsw_ef=hnsw_ef, quantization=rescored) if hnsw_ef or rescored else None
        if exact:
            params = models.SearchParams(exact=True, quantization=models.QuantizationSearchParams(ignore=True))
        where = (models.Filter(must=[models.FieldCondition(key="corpus", match=models.MatchAny(any=corpora))])
                 if corpora else None)
        responses = self.client.query_batch_points(self.names[IMAGES], requests=[
            models.QueryRequest(query=row, using=LAYOUT[IMAGES].vector, limit=limit, params=params, filter=where,
                                with_payload=False, with_vector=False)
            for row in matrix.tolist()
        ])
        return [response.points for response in responses]

    def _sample_vectors(self, collection: str, name: str, *, limit: int, offset: str | None):
        return self.client.scroll(self.names[collection], limit=limit, offset=offset, with_payload=False,
                                  with_vectors=[name])

    def _calibration_due(self) -> bool:
        """Local mode searches by brute force (every beam is exact). A server builds in the background, so
        its graph is measured once the build is done (a later `xmore optimize`): optimizers idle and nearly
        every vector indexed (the newest, in small segments under the indexing threshold, are scanned)."""
        if self._is_local:
            return False
        state = self.index_state()[IMAGES]
        return not state.needs_build and (state.indexed or 0) >= BUILT_SHARE * state.points

    def _query_texts(self, matrix: np.ndarray, groups: list[list[str]], *, limit: int) -> list[list[object]]:
        responses = self.client.query_batch_points(self.names[TEXTS], requests=[
            models.QueryRequest(
                query=row, using=LAYOUT[TEXTS].vector, limit=limit,
                filter=models.Filter(must=[models.HasIdCondition(has_id=group)]),
                params=models.SearchParams(exact=True),  # a scan of the listed points only
                with_payload=True, with_vector=False,
            )
            for row, group in zip(matrix.tolist(), groups, strict=True)
        ])
        return [response.points for response in responses]

    def _query_caption_cache(self, matrix: np.ndarray, *, limit: int) -> list[list[object]]:
        responses = self.client.query_batch_points(self.names[TEXTS], requests=[
            models.QueryRequest(query=row, using=CAPTION_VECTOR, limit=limit, params=models.SearchParams(exact=True),
                                with_payload=False, with_vector=False)
            for row in matrix.tolist()
        ])
        return [response.points for response in responses]

    def _scroll_corpus(self, collection: str, corpus: str, *, limit: int, offset: str | None):
        return self.client.scroll(self.names[collection], limit=limit, offset=offset, with_payload=["key"],
                                  with_vectors=False, scroll_filter=_corpus_filter(corpus))

    def _count(self, collection: str, corpus: str | None) -> int:
        count_filter = None if corpus is None else _corpus_filter(corpus)
        return self.client.count(self.names[collection], count_filter=count_filter, exact=True).count

    def _index_counts(self, collection: str) -> tuple[int, int | None, bool]:
        """Local mode keeps no index. A server owes a build while indexing is off (a bulk load
        running, or one killed before it restored the threshold) or its optimizers wait (grey)."""
        info = self.client.get_collection(self.names[collection])
        if self._is_local:
            return info.points_count or 0, None, False
        deferred = _indexing_threshold(info) == 0 or str(getattr(info.status, "value", info.status)) == "grey"
        return info.points_count or 0, info.indexed_vectors_count or 0, deferred

    @contextlib.contextmanager
    def _deferred_indexing(self) -> Iterator[None]:
        """Indexing off (indexing_threshold 0) on both collections during the load, restored at the end.

        A value of 0 found at the start means another load is running (or one was
        killed): the server's default is restored then, never 0.
        """
        previous = {}
        for name in COLLECTIONS:
            with self._calls("reading collection settings"):
                info = self.client.get_collection(self.names[name])
            previous[name] = _indexing_threshold(info) or DEFAULT_INDEXING_THRESHOLD_KB
            with self._calls("deferring indexing"):
                self._set_indexing_threshold(name, 0)
        try:
            yield
        finally:
            for name, value in previous.items():
                with self._calls("restoring indexing"):
                    self._set_indexing_threshold(name, value)

    def _build_indexes(self) -> None:
        """The server builds in the background: turn indexing back on where a killed load left it off,
        and wake optimizers that wait (an update of the collection's settings starts them)."""
        if self._is_local:
            return
        for name in COLLECTIONS:
            info = self.client.get_collection(self.names[name])
            self._set_indexing_threshold(name, _indexing_threshold(info) or DEFAULT_INDEXING_THRESHOLD_KB)

    def _set_indexing_threshold(self, name: str, value: int) -> None:
        self.client.update_collection(
            self.names[name], optimizers_config=models.OptimizersConfigDiff(indexing_threshold=value))

    # -- internals ---------------------------------------------------------

    def _provenance(self) -> Provenance:
        """What the collections hold; reads need no configured models, writes need open()."""
        if self._stored is None:
            infos = self._infos()
            for name, info in infos.items():
                if info is None:
                    raise StoreNotInitializedError(
                        f"no collection {self.names[name]!r} at {self.location}: run `xmore init`"
                    )
            self._stored = self.stored_provenance()
        return self._stored

    def _infos(self) -> dict[str, object | None]:
        infos: dict[str, object | None] = {}
        for name in COLLECTIONS:
            with self._calls("reading collection info"):
                exists = self.client.collection_exists(self.names[name])
                infos[name] = self.client.get_collection(self.names[name]) if exists else None
        return infos

    def _validate(self, infos: dict[str, object | None], provenance: Provenance) -> None:
        """Existing collections against `provenance`: metadata, then actual vector sizes."""
        for name, info in infos.items():
            if info is None:
                continue
            stored = _metadata_provenance(info, self.names[name], self.location)
            check_provenance(stored, provenance, self.location)
            role, vector, _ = LAYOUT[name]
            vectors = info.config.params.vectors
            size = vectors[vector].size if isinstance(vectors, dict) and vector in vectors else None
            expected = getattr(provenance, f"{role}_dim")
            if size != expected:
                raise StoreMismatchError(
                    f"the vector store at {self.location} does not match the configured models: "
                    f"collection {self.names[name]!r} has no {expected}-d vector {vector!r} "
                    f"(found {size}) for the configured {role} model "
                    f"{getattr(provenance, f'{role}_model')}: use another collection prefix "
                    "or a new store"
                )

    def _translate(self, error: Exception, action: str) -> StoreError:
        """qdrant-client's failures: unreachable, refused (API key), or an answer with its reason."""
        unreachable = f"cannot reach Qdrant at {self.location}"
        if isinstance(error, ResponseHandlingException):
            return StoreUnreachableError(f"{unreachable}: {short(getattr(error, 'source', None) or error)}")
        if isinstance(error, UnexpectedResponse):
            code = error.status_code
            detail = short(error.content.decode("utf-8", "replace") if error.content else "")
            if code == 403 and _WRITE_REFUSED.search(detail):
                return StoreReadOnlyError(
                    f"the Qdrant key is read-only: {action} needs a read-write key (XMORE_QDRANT_API_KEY set to the "
                    f"server's api_key, not its read_only_api_key); Qdrant at {self.location} answered 403")
            if code in (401, 403):
                return StoreError(f"Qdrant at {self.location} refused the request ({code} {error.reason_phrase}) "
                                  f"while {action}: check XMORE_QDRANT_API_KEY")
            if code in (502, 503, 504):
                return StoreUnreachableError(f"{unreachable}: HTTP {code} {error.reason_phrase}")
            return StoreError(f"Qdrant at {self.location} answered {code} while {action}: {detail}")
        if isinstance(error, (ConnectionError, TimeoutError)) or _is_transport_error(error):
            return StoreUnreachableError(f"{unreachable}: {short(error)}")
        return StoreError(f"Qdrant failed while {action} at {self.location}: {short(error)}")


# What Qdrant says when a key that may read is refused a write: "Global manage access is required" (the
# read-only key), "Write access to collection … is required" or "Manage access … is required" (JWT roles).
_WRITE_REFUSED = re.compile(r"\b(manage|write) access\b", re.IGNORECASE)


def upload_processes(points: int) -> int:
    """How many processes upload `points` points to a server."""
    chunks = -(-points // WRITE_CHUNK)
    return max(1, min(UPLOAD_PROCESSES, chunks // UPLOAD_CHUNKS_PER_PROCESS))


def _is_transport_error(error: Exception) -> bool:
    try:
        import httpx
    except ImportError:  # pragma: no cover - qdrant-client depends on httpx
        return False
    return isinstance(error, httpx.TransportError)


def _store_record(infos: dict[str, object | None]) -> dict | None:
    """The xmore record of the first existing collection (images first: both record the same storage)."""
    for name in (IMAGES, TEXTS):
        if infos.get(name) is not None:
            metadata = getattr(infos[name].config, "metadata", None) or {}
            record = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
            return record if isinstance(record, dict) else {}
    return None


def _vector_params(size: int, storage: Storage) -> models.VectorParams:
    """What `exact` leaves at the server's default is not sent: an `exact` collection is created as before
    storage profiles existed."""
    return models.VectorParams(size=size, distance=models.Distance.COSINE,
                               on_disk=True if storage.vectors_on_disk else None, datatype=_datatype(storage))


def _datatype(storage: Storage) -> models.Datatype | None:
    return models.Datatype.FLOAT16 if storage.datatype == "float16" else None


def _quantization(storage: Storage) -> models.ScalarQuantization | models.BinaryQuantization | None:
    """The quantized copy of `images`, held in RAM whatever the originals' placement (as edge.py's)."""
    if storage.quantization == "scalar":
        return models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=0.99, always_ram=True))
    if storage.quantization == "binary":
        return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
    return None


def _metadata_provenance(info: object, collection: str, location: str) -> Provenance:
    metadata = getattr(info.config, "metadata", None) or {}
    record = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    try:
        return Provenance.from_dict(record["provenance"])
    except (ValueError, KeyError, TypeError):
        raise StoreMismatchError(
            f"collection {collection!r} at {location} was not created by xmore "
            "(its metadata records no models): use another collection prefix or remove it"
        ) from None


def _corpus_filter(corpus: str) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="corpus", match=models.MatchValue(value=corpus))])


def _indexing_threshold(info: object) -> int | None:
    return getattr(info.config.optimizer_config, "indexing_threshold", None)
