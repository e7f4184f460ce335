"""The server backend: the two collections on a Qdrant server, through qdrant-client.

`XMORE_QDRANT_URL` picks the client:

    http(s)://host:6333   a Qdrant server (concurrent use, large corpora)
    file:PATH             qdrant-client's local mode on disk: pure Python brute force,
                          one process per path; for tests and tiny corpora only
    :memory:              the same, in memory

The provenance lives in each collection's `metadata` (the images collection is
authoritative for the coarse model, texts for the fine one). `texts` has no
HNSW graph (m=0): it is only searched under a has_id filter, an exact scan of
the listed points.
"""

from __future__ import annotations

import contextlib
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
    StoreUnreachableError,
)
from .base import VectorStore
from .checks import check_provenance, short
from .types import CAPTION_VECTOR, COLLECTIONS, HNSW_EF_CONSTRUCT, IMAGES, LAYOUT, TEXTS, Provenance

METADATA_KEY = "xmore"
METADATA_FORMAT = 1
DEFAULT_TIMEOUT_S = 30
WRITE_CHUNK = 256
# Qdrant's default indexing threshold (KB), restored after a bulk load that found 0.
DEFAULT_INDEXING_THRESHOLD_KB = 20_000


class ServerStore(VectorStore):
    """Collections `{prefix}images` and `{prefix}texts` behind a QdrantClient (which it closes)."""

    backend = "qdrant-server"
    write_chunk = WRITE_CHUNK

    def __init__(self, client: QdrantClient, *, location: str, collection_prefix: str = ""):
        super().__init__(location)
        self.client = client
        self.names = {name: f"{collection_prefix}{name}" for name in COLLECTIONS}

    @classmethod
    def from_settings(cls, settings: Settings, *, collection_prefix: str = "") -> ServerStore:
        url = (settings.qdrant_url or "").strip()
        if url == ":memory:":
            return cls(QdrantClient(":memory:"), location=":memory:",
                       collection_prefix=collection_prefix)
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
            return cls(client, location=f"file:{path}", collection_prefix=collection_prefix)
        if url.startswith(("http://", "https://")):
            client = QdrantClient(url=url, api_key=settings.qdrant_api_key,
                                  timeout=DEFAULT_TIMEOUT_S, check_compatibility=False)
            return cls(client, location=mask_url_password(url), collection_prefix=collection_prefix)
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
        missing = [name for name in (TEXTS, IMAGES) if infos[name] is None]
        for name in missing:
            role, vector, m = LAYOUT[name]
            with self._calls(f"creating collection {self.names[name]!r}"):
                self.client.create_collection(
                    self.names[name],
                    vectors_config={vector: models.VectorParams(
                        size=getattr(provenance, f"{role}_dim"), distance=models.Distance.COSINE)},
                    hnsw_config=models.HnswConfigDiff(m=m, ef_construct=HNSW_EF_CONSTRUCT),
                    metadata={METADATA_KEY: {"format": METADATA_FORMAT, "role": role,
                                             "provenance": provenance.to_dict()}},
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

    @property
    def _is_local(self) -> bool:
        return self.location.startswith("file:") or self.location == ":memory:"

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
        self._stored, self._checked = provenance, True

    def _close(self) -> None:
        with self._calls("closing the client"):
            self.client.close()

    # -- engine hooks (see base.py) ----------------------------------------

    def _metadata(self, collection: str) -> dict:
        info = self.client.get_collection(self.names[collection])
        return dict((info.config.metadata or {}).get(METADATA_KEY) or {})

    def _set_metadata(self, collection: str, record: dict) -> None:
        self.client.update_collection(self.names[collection], metadata={METADATA_KEY: record})

    def _write_points(self, collection: str, ids: list[str], vectors: dict[str, np.ndarray],
                      payloads: list[dict]) -> None:
        self.client.upsert(self.names[collection], wait=True, points=models.Batch(
            ids=ids, vectors={name: matrix.tolist() for name, matrix in vectors.items()}, payloads=payloads))

    def _flush(self, collection: str) -> None:
        """Nothing to do: every write waited (wait=True)."""

    def _write_vectors(self, collection: str, ids: list[str], name: str, matrix: np.ndarray) -> None:
        self.client.update_vectors(self.names[collection], wait=True, points=[
            models.PointVectors(id=pid, vector={name: v}) for pid, v in zip(ids, matrix.tolist(), strict=True)])

    def _replace_caption_vector(self, dim: int, *, drop: bool) -> None:
        if drop:
            self.client.delete_vector_name(self.names[TEXTS], CAPTION_VECTOR)
        self.client.create_vector_name(self.names[TEXTS], CAPTION_VECTOR, models.DenseVectorNameConfig(
            dense=models.DenseVectorConfig(size=dim, distance=models.Distance.COSINE)))

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
                      corpora: list[str] | None) -> list[list[object]]:
        params = models.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef else None
        where = (models.Filter(must=[models.FieldCondition(key="corpus", match=models.MatchAny(any=corpora))])
                 if corpora else None)
        responses = self.client.query_batch_points(self.names[IMAGES], requests=[
            models.QueryRequest(query=row, using=LAYOUT[IMAGES].vector, limit=limit, params=params, filter=where,
                                with_payload=False, with_vector=False)
            for row in matrix.tolist()
        ])
        return [response.points for response in responses]

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
            if code in (401, 403):
                return StoreError(f"Qdrant at {self.location} refused the request ({code}): check XMORE_QDRANT_API_KEY")
            if code in (502, 503, 504):
                return StoreUnreachableError(f"{unreachable}: HTTP {code} {error.reason_phrase}")
            detail = short(error.content.decode("utf-8", "replace") if error.content else "")
            return StoreError(f"Qdrant at {self.location} answered {code} while {action}: {detail}")
        if isinstance(error, (ConnectionError, TimeoutError)) or _is_transport_error(error):
            return StoreUnreachableError(f"{unreachable}: {short(error)}")
        return StoreError(f"Qdrant failed while {action} at {self.location}: {short(error)}")


def _is_transport_error(error: Exception) -> bool:
    try:
        import httpx
    except ImportError:  # pragma: no cover - qdrant-client depends on httpx
        return False
    return isinstance(error, httpx.TransportError)


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
