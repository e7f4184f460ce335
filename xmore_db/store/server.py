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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import Settings, mask_url_password
from ..errors import (
    ConfigError,
    StoreError,
    StoreLockedError,
    StoreMismatchError,
    StoreNotInitializedError,
    StoreUnreachableError,
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

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

METADATA_KEY = "xmore"
METADATA_FORMAT = 1
DEFAULT_TIMEOUT_S = 30
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
WRITE_CHUNK = 256
# Qdrant's default indexing threshold (KB), restored after a bulk load that found 0.
DEFAULT_INDEXING_THRESHOLD_KB = 20_000
READ_CHUNK = 1024

_ROLE = {IMAGES: ("coarse", COARSE_VECTOR, HNSW_M), TEXTS: ("fine", FINE_VECTOR, 0)}


class ServerStore:
    """Collections `{prefix}images` and `{prefix}texts` behind a QdrantClient (which it closes)."""

    backend = "qdrant-server"

    def __init__(self, client: QdrantClient, *, location: str, collection_prefix: str = ""):
        self.client = client
        self.location = location
        self.names = {IMAGES: f"{collection_prefix}{IMAGES}", TEXTS: f"{collection_prefix}{TEXTS}"}
        self._stored: Provenance | None = None
        self._checked = False

    @classmethod
    def from_settings(cls, settings: Settings, *, collection_prefix: str = "") -> ServerStore:
        from qdrant_client import QdrantClient

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
        from qdrant_client import models

        infos = self._infos()
        self._validate(infos, provenance)
        missing = [name for name in (TEXTS, IMAGES) if infos[name] is None]
        for name in missing:
            role, vector, m = _ROLE[name]
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
        from qdrant_client import models

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

    def close(self) -> None:
        self._checked = False
        with self._calls("closing the client"):
            self.client.close()

    def __enter__(self) -> ServerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------

    def upsert_pairs(self, batch: PairBatch) -> None:
        from qdrant_client import models

        if not self._checked:
            raise StoreError(
                f"the store at {self.location} was not opened: call open() or init() before writing"
            )
        ids, images, texts = check_batch(batch, self._stored, self.location)
        cached = None
        if batch.caption_vectors is not None:
            cached = check_caption_vectors(self.caption_cache(), batch.caption_vectors, len(ids), self.location)
        # Texts first: an image point is what makes a pair reachable (coarse search),
        # so a crash in between leaves at most an orphan caption nobody finds.
        for start in range(0, len(ids), WRITE_CHUNK):
            stop = start + WRITE_CHUNK
            with self._calls("writing captions"):
                self.client.upsert(self.names[TEXTS], wait=True, points=models.Batch(
                    ids=ids[start:stop],
                    vectors={FINE_VECTOR: texts[start:stop].tolist(),
                             **({} if cached is None else {CAPTION_VECTOR: cached[start:stop].tolist()})},
                    payloads=[{"caption": caption, "corpus": batch.corpus, "key": key}
                              for caption, key in zip(batch.captions[start:stop],
                                                      batch.keys[start:stop], strict=True)],
                ))
        for start in range(0, len(ids), WRITE_CHUNK):
            stop = start + WRITE_CHUNK
            with self._calls("writing images"):
                self.client.upsert(self.names[IMAGES], wait=True, points=models.Batch(
                    ids=ids[start:stop],
                    vectors={COARSE_VECTOR: images[start:stop].tolist()},
                    payloads=[{"corpus": batch.corpus, "key": key}
                              for key in batch.keys[start:stop]],
                ))

    # -- caption cache -----------------------------------------------------

    def _texts_record(self) -> dict:
        with self._calls("reading collection info"):
            info = self.client.get_collection(self.names[TEXTS])
        return dict((info.config.metadata or {}).get(METADATA_KEY) or {})

    def caption_cache(self) -> CaptionCache | None:
        entry = self._texts_record().get("caption_cache")
        return CaptionCache(model=entry["model"], dim=int(entry["dim"])) if entry else None

    def set_caption_cache(self, cache: CaptionCache) -> None:
        from qdrant_client import models

        record = self._texts_record()
        current = record.get("caption_cache")
        if current == {"model": cache.model, "dim": cache.dim}:
            return
        with self._calls("creating the caption cache"):
            if current:
                self.client.delete_vector_name(self.names[TEXTS], CAPTION_VECTOR)
            self.client.create_vector_name(self.names[TEXTS], CAPTION_VECTOR, models.DenseVectorNameConfig(
                dense=models.DenseVectorConfig(size=cache.dim, distance=models.Distance.COSINE)))
            record["caption_cache"] = {"model": cache.model, "dim": cache.dim}
            self.client.update_collection(self.names[TEXTS], metadata={METADATA_KEY: record})

    def caption_vectors(self, ids: Sequence[str]) -> np.ndarray:
        cache = self.caption_cache()
        wanted = canonical_ids(ids)
        if cache is None or not wanted:
            return cached_rows(wanted, [], cache.dim if cache else 0)
        with self._calls("reading cached caption embeddings"):
            records = self.client.retrieve(self.names[TEXTS], ids=list(dict.fromkeys(wanted)),
                                           with_payload=False, with_vectors=[CAPTION_VECTOR])
        return cached_rows(wanted, records, cache.dim)

    def set_caption_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        from qdrant_client import models

        wanted = canonical_ids(ids)
        matrix = check_caption_vectors(self.caption_cache(), vectors, len(wanted), self.location)
        with self._calls("writing cached caption embeddings"):
            self.client.update_vectors(self.names[TEXTS], wait=True, points=[
                models.PointVectors(id=pid, vector={CAPTION_VECTOR: v})
                for pid, v in zip(wanted, matrix.tolist(), strict=True)])

    def uncached_captions(self, *, limit: int, offset: str | None = None) -> tuple[list[tuple[str, str]], str | None]:
        from qdrant_client import models

        with self._calls("listing captions without a cached embedding"):
            records, next_offset = self.client.scroll(
                self.names[TEXTS], limit=limit, offset=offset, with_payload=["caption"], with_vectors=False,
                scroll_filter=models.Filter(must_not=[models.HasVectorCondition(has_vector=CAPTION_VECTOR)]))
        page = [(str(r.id), str((r.payload or {}).get("caption", ""))) for r in records]
        return page, None if next_offset is None else str(next_offset)

    def delete_corpus(self, corpus: str) -> None:
        from qdrant_client import models

        for name in (IMAGES, TEXTS):
            with self._calls("deleting a corpus"):
                self.client.delete(self.names[name], wait=True,
                                   points_selector=models.FilterSelector(filter=_corpus_filter(corpus)))

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Indexing off (indexing_threshold 0) on both collections during the load, restored at the end.

        A value of 0 found at the start means another load is running (or one was
        killed): the server's default is restored then, never 0.
        """
        from qdrant_client import models

        previous = {}
        for name in (IMAGES, TEXTS):
            with self._calls("reading collection settings"):
                info = self.client.get_collection(self.names[name])
            value = getattr(info.config.optimizer_config, "indexing_threshold", None)
            previous[name] = value if value else DEFAULT_INDEXING_THRESHOLD_KB
            with self._calls("deferring indexing"):
                self.client.update_collection(
                    self.names[name], optimizers_config=models.OptimizersConfigDiff(indexing_threshold=0))
        try:
            yield
        finally:
            for name, value in previous.items():
                with self._calls("restoring indexing"):
                    self.client.update_collection(
                        self.names[name], optimizers_config=models.OptimizersConfigDiff(indexing_threshold=value))

    def optimize(self) -> None:
        """Nothing to do: the server indexes in the background."""

    # -- reads -------------------------------------------------------------

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        wanted = list(dict.fromkeys(canonical_ids(ids)))
        if not wanted:
            return set()
        self._provenance()
        present = {}
        for name in (IMAGES, TEXTS):
            found: set[str] = set()
            for start in range(0, len(wanted), READ_CHUNK):
                with self._calls("looking up ids"):
                    records = self.client.retrieve(
                        self.names[name], ids=wanted[start:start + READ_CHUNK],
                        with_payload=False, with_vectors=False,
                    )
                found.update(str(record.id) for record in records)
            present[name] = found
        return present[IMAGES] & present[TEXTS]

    def coarse_search(self, queries: np.ndarray, *, limit: int, hnsw_ef: int | None = None) -> list[list[ImageHit]]:
        from qdrant_client import models

        matrix = check_queries(queries, self._provenance(), "coarse", self.location)
        limit = check_limit(limit)
        if len(matrix) == 0:
            return []
        params = models.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef else None
        requests = [
            models.QueryRequest(query=row, using=COARSE_VECTOR, limit=limit, params=params,
                                with_payload=False, with_vector=False)
            for row in matrix.tolist()
        ]
        with self._calls("coarse search"):
            responses = self.client.query_batch_points(self.names[IMAGES], requests=requests)
        return [
            sorted_by_score([ImageHit(pair_id=str(p.id), score=float(p.score))
                             for p in response.points])
            for response in responses
        ]

    def fine_search(
        self, queries: np.ndarray, candidates: Sequence[Sequence[str]], *, limit: int
    ) -> list[list[CaptionHit]]:
        from qdrant_client import models

        matrix = check_queries(queries, self._provenance(), "fine", self.location)
        limit = check_limit(limit)
        groups = check_candidates(candidates, len(matrix))
        asked = [i for i, group in enumerate(groups) if group]
        out: list[list[CaptionHit]] = [[] for _ in groups]
        if not asked:
            return out
        rows = matrix.tolist()
        requests = [
            models.QueryRequest(
                query=rows[i], using=FINE_VECTOR, limit=limit,
                filter=models.Filter(must=[models.HasIdCondition(has_id=groups[i])]),
                params=models.SearchParams(exact=True),  # a scan of the listed points only
                with_payload=True, with_vector=False,
            )
            for i in asked
        ]
        with self._calls("fine search"):
            responses = self.client.query_batch_points(self.names[TEXTS], requests=requests)
        for i, response in zip(asked, responses, strict=True):
            out[i] = sorted_by_score([_caption_hit(p) for p in response.points])
        return out

    def counts(self) -> dict[str, int]:
        self._provenance()
        out = {}
        for name in (IMAGES, TEXTS):
            with self._calls("counting points"):
                out[name] = int(self.client.count(self.names[name], exact=True).count)
        return out

    def corpus_counts(self, corpus: str) -> dict[str, int]:
        self._provenance()
        out = {}
        for name in (IMAGES, TEXTS):
            with self._calls("counting points"):
                out[name] = int(self.client.count(self.names[name], count_filter=_corpus_filter(corpus),
                                                  exact=True).count)
        return out

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
        for name in (IMAGES, TEXTS):
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
            role, vector, _ = _ROLE[name]
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

    @contextlib.contextmanager
    def _calls(self, action: str) -> Iterator[None]:
        """Map qdrant-client failures to our errors, one line each."""
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        try:
            yield
        except StoreError:
            raise
        except ResponseHandlingException as error:
            reason = getattr(error, "source", None) or error
            raise StoreUnreachableError(
                f"cannot reach Qdrant at {self.location}: {short(reason)}"
            ) from error
        except UnexpectedResponse as error:
            code = error.status_code
            if code in (401, 403):
                raise StoreError(
                    f"Qdrant at {self.location} refused the request ({code}): "
                    "check XMORE_QDRANT_API_KEY"
                ) from error
            if code in (502, 503, 504):
                raise StoreUnreachableError(
                    f"cannot reach Qdrant at {self.location}: HTTP {code} {error.reason_phrase}"
                ) from error
            detail = short(error.content.decode("utf-8", "replace") if error.content else "")
            raise StoreError(
                f"Qdrant at {self.location} answered {code} while {action}: {detail}"
            ) from error
        except (ConnectionError, TimeoutError) as error:
            raise StoreUnreachableError(
                f"cannot reach Qdrant at {self.location}: {short(error)}"
            ) from error
        except Exception as error:
            if _is_transport_error(error):
                raise StoreUnreachableError(
                    f"cannot reach Qdrant at {self.location}: {short(error)}"
                ) from error
            raise StoreError(
                f"Qdrant failed while {action} at {self.location}: {short(error)}"
            ) from error


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


def _corpus_filter(corpus: str):
    from qdrant_client import models

    return models.Filter(must=[models.FieldCondition(key="corpus", match=models.MatchValue(value=corpus))])


def _caption_hit(point: object) -> CaptionHit:
    payload = point.payload or {}
    return CaptionHit(
        pair_id=str(point.id), score=float(point.score), caption=str(payload.get("caption", "")),
        corpus=str(payload.get("corpus", "")), key=str(payload.get("key", "")),
    )
