"""A stand-in Qdrant server on loopback: the REST routes the server backend calls, answered by local mode.

No Qdrant server binary runs here, and qdrant-client's local mode never goes through
HTTP, so neither can show what the server backend does with a server's answers.
This stub can: `http.server` on 127.0.0.1, the REST paths and JSON envelopes of
Qdrant's API (`{"result": …, "status": "ok", "time": …}`, errors as
`{"status": {"error": …}}`), each answered by qdrant-client's local mode in memory.
It checks the `api-key` header as a server started with QDRANT__SERVICE__API_KEY
and QDRANT__SERVICE__READ_ONLY_API_KEY does: no key or a wrong one is 401, the
read-only key is 403 on every write with the words Qdrant uses ("Forbidden: Global
manage access is required").

What it does not do: shard, replicate or build indexes. The layout a collection is
created with (shard_number, replication_factor, write_consistency_factor) is
recorded and reported back in the collection info, as a server reports it, and the
request bodies are kept so tests can read what the client sent.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python
from qdrant_client import QdrantClient, models

LAYOUT = ("shard_number", "replication_factor", "write_consistency_factor")
# A server reports these for a collection created without them.
SERVER_DEFAULT_LAYOUT = {"shard_number": 1, "replication_factor": 1, "write_consistency_factor": 1}
READ_ONLY_REFUSAL = "Forbidden: Global manage access is required"

_COLLECTION = r"/collections/(?P<collection>[^/]+)"
# (method, path, handler name, is a write)
ROUTES = [
    ("GET", _COLLECTION + "/exists", "exists", False),
    ("GET", _COLLECTION, "info", False),
    ("PUT", _COLLECTION, "create", True),
    ("PATCH", _COLLECTION, "update", True),
    ("DELETE", _COLLECTION, "drop", True),
    ("PUT", _COLLECTION + "/index", "index", True),
    ("PUT", _COLLECTION + "/vectors/(?P<vector>[^/]+)", "create_vector", True),
    ("DELETE", _COLLECTION + "/vectors/(?P<vector>[^/]+)", "delete_vector", True),
    ("PUT", _COLLECTION + "/points", "upsert", True),
    ("PUT", _COLLECTION + "/points/vectors", "update_vectors", True),
    ("POST", _COLLECTION + "/points/delete", "delete_points", True),
    ("POST", _COLLECTION + "/points", "retrieve", False),
    ("POST", _COLLECTION + "/points/scroll", "scroll", False),
    ("POST", _COLLECTION + "/points/count", "count", False),
    ("POST", _COLLECTION + "/points/query/batch", "query_batch", False),
]
_DONE = models.UpdateResult(operation_id=0, status=models.UpdateStatus.COMPLETED)


class QdrantStub:
    """`with QdrantStub(api_key=…, read_only_api_key=…) as stub:` serves on `stub.url` until the block ends."""

    def __init__(self, *, api_key: str, read_only_api_key: str):
        self.keys = {api_key: "read-write", read_only_api_key: "read-only"}
        self.local = QdrantClient(":memory:")
        self.created: dict[str, dict] = {}  # collection -> the JSON body of its creation
        self.refused: list[tuple[str, str]] = []  # (method, path) answered 403
        self._layouts: dict[str, dict] = {}
        self._indexed: dict[str, set[str]] = {}
        self._thresholds: dict[str, int] = {}
        self._lock = threading.Lock()  # local mode is not thread-safe
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> QdrantStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.local.close()

    # -- routes: each returns the `result` of the answer ------------------------------

    def exists(self, collection: str, body: dict) -> dict:
        return {"exists": self.local.collection_exists(collection)}

    def info(self, collection: str, body: dict) -> object:
        if not self.local.collection_exists(collection):
            raise LookupError(f"Not found: Collection `{collection}` doesn't exist!")
        info = self.local.get_collection(collection)
        for name, value in self._layouts[collection].items():
            setattr(info.config.params, name, value)
        info.payload_schema = {field: models.PayloadIndexInfo(data_type=models.PayloadSchemaType.KEYWORD, points=0)
                               for field in self._indexed[collection]}
        if collection in self._thresholds:
            info.config.optimizer_config.indexing_threshold = self._thresholds[collection]
        return info

    def create(self, collection: str, body: dict) -> bool:
        request = models.CreateCollection.model_validate(body)
        self.local.create_collection(collection, vectors_config=request.vectors, metadata=request.metadata)
        self.created[collection] = body
        self._layouts[collection] = {**SERVER_DEFAULT_LAYOUT,
                                     **{name: body[name] for name in LAYOUT if body.get(name) is not None}}
        self._indexed[collection] = set()
        return True

    def update(self, collection: str, body: dict) -> bool:
        request = models.UpdateCollection.model_validate(body)
        if request.optimizers_config is not None and request.optimizers_config.indexing_threshold is not None:
            self._thresholds[collection] = request.optimizers_config.indexing_threshold
        if request.metadata is not None:
            self.local.update_collection(collection, metadata=request.metadata)
        return True

    def drop(self, collection: str, body: dict) -> bool:
        return self.local.delete_collection(collection)

    def index(self, collection: str, body: dict) -> models.UpdateResult:
        self._indexed[collection].add(body["field_name"])
        return _DONE

    def create_vector(self, collection: str, body: dict, vector: str) -> models.UpdateResult:
        config = TypeAdapter(models.VectorNameConfig).validate_python(body)
        return self.local.create_vector_name(collection, vector, config)

    def delete_vector(self, collection: str, body: dict, vector: str) -> models.UpdateResult:
        return self.local.delete_vector_name(collection, vector)

    def upsert(self, collection: str, body: dict) -> models.UpdateResult:
        request = TypeAdapter(models.PointInsertOperations).validate_python(body)
        points = request.batch if isinstance(request, models.PointsBatch) else request.points
        return self.local.upsert(collection, points=points)

    def update_vectors(self, collection: str, body: dict) -> models.UpdateResult:
        return self.local.update_vectors(collection, points=models.UpdateVectors.model_validate(body).points)

    def delete_points(self, collection: str, body: dict) -> models.UpdateResult:
        return self.local.delete(collection, points_selector=TypeAdapter(models.PointsSelector).validate_python(body))

    def retrieve(self, collection: str, body: dict) -> object:
        request = models.PointRequest.model_validate(body)
        return self.local.retrieve(collection, ids=request.ids, with_payload=_given(request.with_payload, True),
                                   with_vectors=_given(request.with_vector, False))

    def scroll(self, collection: str, body: dict) -> dict:
        request = models.ScrollRequest.model_validate(body)
        points, offset = self.local.scroll(
            collection, scroll_filter=request.filter, limit=request.limit or 10, offset=request.offset,
            with_payload=_given(request.with_payload, True), with_vectors=_given(request.with_vector, False))
        return {"points": points, "next_page_offset": offset}

    def count(self, collection: str, body: dict) -> object:
        request = models.CountRequest.model_validate(body)
        return self.local.count(collection, count_filter=request.filter, exact=_given(request.exact, True))

    def query_batch(self, collection: str, body: dict) -> object:
        requests = models.QueryRequestBatch.model_validate(body).searches
        return self.local.query_batch_points(collection, requests=requests)

    # -- dispatch ---------------------------------------------------------------------

    def answer(self, method: str, path: str, key: str | None, body: dict) -> tuple[int, dict]:
        for route_method, pattern, name, writes in ROUTES:
            match = re.fullmatch(pattern, path)
            if route_method != method or match is None:
                continue
            role = self.keys.get(key or "")
            if role is None:
                return 401, _error("Must provide an API key or an Authorization bearer token" if not key
                                   else "Invalid API key or JWT")
            if writes and role == "read-only":
                self.refused.append((method, path))
                return 403, _error(READ_ONLY_REFUSAL)
            try:
                with self._lock:
                    result = getattr(self, name)(body=body, **match.groupdict())
            except LookupError as error:
                return 404, _error(str(error).strip("'\""))
            except ValueError as error:
                return 400, _error(f"Bad request: {error}")
            return 200, {"result": to_jsonable_python(result), "status": "ok", "time": 0.0}
        return 404, _error(f"the stub does not serve {method} {path}")


def _given(value, default):
    return default if value is None else value


def _error(message: str) -> dict:
    return {"status": {"error": message}, "time": 0.0}


def _handler(stub: QdrantStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            status, answer = stub.answer(self.command, urlsplit(self.path).path, self.headers.get("api-key"), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: pytest shows what failed."""

    return Handler
