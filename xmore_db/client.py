"""A Python client for `xmore serve`: the service's routes as methods, over httpx.

    from xmore_db.client import Client

    with Client("http://xmore.internal:8000", api_key=KEY) as server:
        results = server.classify(["photo.jpg"], labels=["circle", "star"], stream="shapes")
        print(results[0]["prediction"], server.stream("shapes")["n_events"])

Methods mirror `xmore_db.open(...)`'s Index where they overlap, and return the
service's JSON as plain dicts and lists: the same documents `xmore … --json`
prints (see README, JSON vocabulary), not the Index's dataclasses. Images are
file paths, bytes (an encoded image file), PIL images or (H, W, 3) arrays; a
path is sent as its file's bytes under its own name, which the stream records
as the query, as a local `xmore classify` does.

Failures are typed (xmore_db.errors): ServerAuthError for 401/403, ServerError
(with `status`) for any other refusal, carrying the service's one-line message;
ServerUnreachableError when no answer comes. Importing this module loads neither
torch nor an engine; the API key never appears in a message or a repr.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .config import mask_url_password
from .errors import (
    BadInputError,
    ConfigError,
    ImageError,
    ServerAuthError,
    ServerError,
    ServerUnreachableError,
    first_line,
)

if TYPE_CHECKING:
    from .images import ImageInput

INSTALL = "xmore_db.client needs httpx: pip install 'xmore-db[client]'"
DEFAULT_TIMEOUT = 300.0  # seconds: a large classify request on a CPU server takes a while


class Client:
    """One `xmore serve` at `url`, spoken to with `api_key` (sent as `Authorization: Bearer KEY`).

    A context manager: close() (or the end of the `with` block) closes its connections.
    `timeout`: seconds to wait for an answer (connecting: at most 10).
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        try:
            import httpx
        except ImportError:
            raise ConfigError(INSTALL) from None
        self.url = check_url(url)
        self._shown = mask_url_password(self.url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._has_key = bool(api_key)
        self._http = httpx.Client(base_url=self.url, headers=headers,
                                  timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)))
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"Client({self._shown!r}, api_key={'****' if self._has_key else None})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- classification, retrieval, search ------------------------------------------------------------------

    def classify(self, images: Sequence[ImageInput] | ImageInput, *, labels: Sequence[str] | None = None,
                 label_set: str | None = None, stream: str = "default", method: str = "xmore",
                 corpora: Sequence[str] | None = None) -> list[dict]:
        """Classify images in order into `stream`: one `xmore classify --json` document each.

        Class names come inline (`labels`) or as a label set stored on the server (`label_set`), not both.
        """
        if (labels is None) == (label_set is None):
            raise BadInputError("give labels or label_set (one of the two)")
        form = {"stream": stream, "method": method}
        if labels is not None:
            if isinstance(labels, str):
                raise BadInputError("labels is a list of class names, not one string")
            form["labels"] = "\n".join(labels)  # newlines: a class name may hold a comma
        else:
            form["label_set"] = label_set
        if corpora:
            form["corpora"] = ",".join(corpora)
        return self._send("POST", "/v1/classify", data=form, files=uploads(images))

    def retrieve(self, images: Sequence[ImageInput] | ImageInput, *, coarse: bool = False,
                 corpora: Sequence[str] | None = None) -> list[dict]:
        """Each image's fine-ranked captions (and its coarse neighbours with `coarse`), as `xmore retrieve --json`."""
        form = {"coarse": "true" if coarse else "false"}
        if corpora:
            form["corpora"] = ",".join(corpora)
        return self._send("POST", "/v1/retrieve", data=form, files=uploads(images))

    def search(self, text: str | None = None, *, image: ImageInput | None = None, n: int = 20, offset: int = 0,
               corpora: Sequence[str] | None = None, dedup: float | None = None) -> list[dict]:
        """The pairs whose image is nearest to a text or an image: the hits `xmore search --json` prints."""
        if (text is None) == (image is None):
            raise BadInputError("search needs a text or an image (one of the two)")
        if text is not None:
            body = {"text": text, "n": n, "offset": offset, "corpora": list(corpora) if corpora else None,
                    "dedup": dedup}
            return self._send("POST", "/v1/search", json=body)
        form = {"n": str(n), "offset": str(offset)}
        if corpora:
            form["corpora"] = ",".join(corpora)
        if dedup is not None:
            form["dedup"] = str(dedup)
        [(_, upload)] = uploads([image])
        return self._send("POST", "/v1/search/image", data=form, files=[("image", upload)])

    # ---- streams ----------------------------------------------------------------------------------------------

    def streams(self) -> list[dict]:
        """The caller's streams with their statistics (`xmore streams list --json`)."""
        return self._send("GET", "/v1/streams")

    def stream(self, name: str, *, last: int = 10) -> dict:
        """A stream's statistics and its `last` events (`xmore streams show NAME --json`)."""
        return self._send("GET", f"/v1/streams/{_segment(name)}", params={"last": last})

    def events(self, name: str, *, last: int | None = None) -> list[dict]:
        """A stream's events, oldest first (the last `last` only, if given)."""
        if last is None:
            last = self.stream(name, last=0)["n_events"]
        return self.stream(name, last=last)["events"] if last else []

    def reset(self, name: str) -> dict:
        """Delete a stream's history (admin keys): `{"stream", "events_removed"}`."""
        return self._send("POST", f"/v1/streams/{_segment(name)}/reset")

    # ---- corpora and label sets -------------------------------------------------------------------------------

    def corpora(self) -> list[dict]:
        """The corpora, each with its team, units and running ingest (`xmore corpora list --json`'s fields)."""
        return self._send("GET", "/v1/corpora")

    def corpus(self, name: str) -> dict:
        """One corpus: its team, units, skipped rows and its ingest (`xmore corpora show NAME --json`'s fields)."""
        return self._send("GET", f"/v1/corpora/{_segment(name)}")

    def delete_corpus(self, name: str) -> dict:
        """Delete a corpus: its points and unit records (an ingest key of its team, or an admin key)."""
        return self._send("DELETE", f"/v1/corpora/{_segment(name)}")

    def ingest(self, source: str | os.PathLike, *, corpus: str, format: str | None = None,
               captions: str | os.PathLike | None = None, text_emb: str | os.PathLike | None = None,
               image_column: str | None = None, caption_column: str | None = None, separator: str | None = None,
               keep_columns: Sequence[str] | None = None, allow_partial: bool = False, workers: int = 1,
               write_batch: int = 1024, max_caption_chars: int = 1000) -> dict:
        """Start ingesting `source` into `corpus`, in the background (`xmore ingest`'s options).

        Paths are the server's, under one of its `xmore serve --ingest-root` directories. The answer (202)
        comes once the source passed the checks: the corpus, its team and the ingest's `status`; `corpus(name)`
        follows it (`["ingest"]["status"]`: running, then idle with `last`, or failed with `error`).
        """
        body = {"source": str(source), "format": format, "captions": _path_or_none(captions),
                "text_emb": _path_or_none(text_emb), "image_column": image_column, "caption_column": caption_column,
                "separator": separator, "keep_columns": list(keep_columns) if keep_columns is not None else None,
                "allow_partial": allow_partial, "workers": workers, "write_batch": write_batch,
                "max_caption_chars": max_caption_chars}
        return self._send("POST", f"/v1/corpora/{_segment(corpus)}/ingest", json=body)

    def labelsets(self) -> list[dict]:
        """The caller's team's label sets."""
        return self._send("GET", "/v1/labelsets")

    def labelset(self, name: str) -> dict:
        """One of the team's label sets, with its class names."""
        return self._send("GET", f"/v1/labelsets/{_segment(name)}")

    def put_labelset(self, name: str, labels: Sequence[str]) -> dict:
        """Create or replace one of the team's label sets, for classify's `label_set` (ingest keys or higher)."""
        if isinstance(labels, str):
            raise BadInputError("labels is a list of class names, not one string")
        return self._send("PUT", f"/v1/labelsets/{_segment(name)}", json={"labels": list(labels)})

    def delete_labelset(self, name: str) -> dict:
        """Delete one of the team's label sets (ingest keys or higher)."""
        return self._send("DELETE", f"/v1/labelsets/{_segment(name)}")

    # ---- keys (admin) -----------------------------------------------------------------------------------------

    def keys(self, *, include_revoked: bool = False) -> list[dict]:
        """The API keys as `xmore keys list --json` lists them: ids, teams, roles, prefixes; never a key."""
        return self._send("GET", "/v1/keys", params={"all": "true" if include_revoked else "false"})

    def create_key(self, *, team: str, role: str, note: str | None = None) -> dict:
        """A new key for `team` with `role` (query, ingest or admin): its `api_key` is in this answer only."""
        return self._send("POST", "/v1/keys", json={"team": team, "role": role, "note": note})

    def revoke_key(self, key_id: int) -> dict:
        """Revoke a key: its record, and `already_revoked`."""
        return self._send("DELETE", f"/v1/keys/{int(key_id)}")

    # ---- status and probes ------------------------------------------------------------------------------------

    def status(self) -> dict:
        """Backends, collection sizes, database revision, and the caller's team (`GET /v1/status`)."""
        return self._send("GET", "/v1/status")

    def health(self) -> dict:
        """`{"status": "ok"}` while the process is alive (no key needed)."""
        return self._send("GET", "/healthz")

    def ready(self) -> dict:
        """`{"status": "ready"}` when the store and the database are reachable; ServerError 503 otherwise."""
        return self._send("GET", "/readyz")

    # ---- one request ------------------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **request: Any) -> Any:
        """The answer's JSON; a typed error, one line, for every failure."""
        import httpx

        try:
            response = self._http.request(method, path, **request)
        except httpx.TimeoutException:
            raise ServerUnreachableError(f"no answer from the server at {self._shown} within "
                                         f"{self._timeout:g} s") from None
        except httpx.TransportError as exc:
            reason = first_line(exc) or type(exc).__name__
            raise ServerUnreachableError(f"cannot reach the server at {self._shown}: {reason}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_success:
            if payload is None and response.content.strip() not in (b"null", b""):
                raise ServerError(f"{self._shown} answered {response.status_code} with something that is not "
                                  "JSON: is it `xmore serve`?", status=response.status_code)
            return payload
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            message = first_line(payload["error"]) or f"error {response.status_code}"
        else:
            message = f"the server at {self._shown} answered {response.status_code} {response.reason_phrase}"
        kind = ServerAuthError if response.status_code in (401, 403) else ServerError
        raise kind(message, status=response.status_code)


def check_url(url: str) -> str:
    """`url` without a trailing slash, if it is http(s)://HOST[:PORT][/PREFIX]; ConfigError otherwise."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"server URL {mask_url_password(str(url))!r} is not http://HOST[:PORT] or "
                          "https://HOST[:PORT]")
    return str(url).rstrip("/")


def _path_or_none(path: str | os.PathLike | None) -> str | None:
    return None if path is None else str(path)


def _segment(name: str) -> str:
    """A stream, corpus or label-set name as one path segment: `/`, spaces, `?` and `#` percent-encoded."""
    return quote(name, safe="")


def uploads(images: Sequence[ImageInput] | ImageInput) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The multipart `images` fields for images, in order; every file is read before anything is sent."""
    from PIL import Image

    single = isinstance(images, (str, bytes, bytearray, os.PathLike, Image.Image)) or hasattr(images, "shape")
    items = [images] if single else list(images)
    if not items:
        raise BadInputError("no images given")
    return [("images", _upload(image, i)) for i, image in enumerate(items)]


def _upload(image: ImageInput, number: int) -> tuple[str, bytes, str]:
    """(name, bytes, content type) of one image: a file as it is on disk, anything else as PNG."""
    import mimetypes

    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"<image {number}>", bytes(image), "application/octet-stream"
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"cannot read image {path}: no such file") from None
        except IsADirectoryError:
            raise ImageError(f"cannot read image {path}: it is a directory") from None
        except PermissionError:
            raise ImageError(f"cannot read image {path}: permission denied") from None
        except OSError as exc:
            raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from None
        return str(image), data, mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    import io

    from .images import as_pil

    buffer = io.BytesIO()
    as_pil(image).save(buffer, format="PNG")  # lossless: the server sees the pixels given here
    return f"<image {number}>", buffer.getvalue(), "image/png"
