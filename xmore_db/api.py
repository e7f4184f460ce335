"""The Python API: one object over one index, with the same results the CLI prints as JSON.

    import xmore_db

    with xmore_db.open(home="data/xmore", coarse_model="ViT-B-32:openai", ...) as index:
        index.init()
        index.ingest("my-corpus/", corpus="web")
        hits = index.search("a red striped star", n=10)
        results = index.classify(["photo.jpg"], labels=["circle", "star"], stream="shapes")

Images are file paths, PIL images or (H, W, 3) arrays. Settings not given come
from the XMORE_* variables, then the defaults, exactly as for the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Settings
from .workspace import Workspace, initialise

if TYPE_CHECKING:
    from .classify import Classification
    from .history import Event, StreamStats
    from .images import ImageInput
    from .ingest import IngestReport
    from .retrieval import Retrieval
    from .search import SearchHit


class Index:
    """One index (the two collections and the history) and the models named by its settings.

    Models load on first use and stay loaded; close() (or a `with` block) releases the store and database.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._workspace = Workspace(settings)

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._workspace.close()

    def init(self) -> dict:
        """Create the collections and migrate the database (safe to repeat); what `xmore init --json` prints."""
        self._workspace.close()  # init opens the store itself: one process, one handle
        result = initialise(self.settings)
        self._workspace = Workspace(self.settings)
        return result

    def ingest(self, path: str | Path, *, corpus: str, **options) -> IngestReport:
        """Ingest a corpus folder (see `xmore ingest --help` for the layouts); keyword options as ingest()'s.

        On the embedded store the load has the store to itself: `texts` is written by a second process
        meanwhile, and a search or classify from another thread fails in one line until it ends.
        """
        from .ingest import ingest

        return ingest(self._workspace, Path(path), corpus=corpus, **options)

    def search(self, text: str | None = None, *, image: ImageInput | None = None, n: int = 20, offset: int = 0,
               corpora: Sequence[str] | None = None, dedup: float | None = None) -> list[SearchHit]:
        """The pairs whose image is nearest to a text or an image (`xmore search`)."""
        from .search import search

        return search(self._workspace, text=text, image=image, n=n, offset=offset,
                      corpora=list(corpora) if corpora else None, dedup=dedup)

    def retrieve(self, images: Sequence[ImageInput], *, corpora: Sequence[str] | None = None) -> list[Retrieval]:
        """Each image's coarse neighbours and fine-ranked captions (`xmore retrieve`), K and k from the settings."""
        from .classify import embed_images
        from .images import as_pil
        from .retrieval import retrieve

        pil = [as_pil(image) for image in images]
        embeddings = embed_images(self._workspace, pil, ("coarse", "fine"))
        s = self.settings
        return retrieve(self._workspace.store(), embeddings["coarse"], embeddings["fine"], coarse_k=s.coarse_k,
                        fine_k=s.fine_k, hnsw_ef=s.hnsw_ef, corpora=list(corpora) if corpora else None)

    def classify(self, images: Sequence[ImageInput], *, labels: Sequence[str], stream: str = "default",
                 method: str = "xmore", textbank: str | Path | None = None, fusion: str | Path | None = None,
                 corpora: Sequence[str] | None = None) -> list[Classification]:
        """Classify images in order into `stream` (`xmore classify`): one Classification each."""
        from .classify import classify_methods, record_scored, score_images
        from .config import check_stream_name
        from .errors import BadInputError
        from .images import as_pil
        from .labels import check_labels
        from .methods.inputs import MethodFiles

        check_stream_name(stream)
        if method not in classify_methods():
            raise BadInputError(f"unknown method {method!r}: choose from {', '.join(classify_methods())}")
        names = check_labels(list(labels))
        queries = [str(image) if isinstance(image, (str, Path)) else f"<image {i}>" for i, image in enumerate(images)]
        pil = [as_pil(image) for image in images]  # every image is read before the first history write
        files = MethodFiles(textbank=Path(textbank) if textbank else None, fusion=Path(fusion) if fusion else None)
        out: list[Classification] = []
        step = self.settings.batch_size
        for start in range(0, len(pil), step):
            scored = score_images(self._workspace, pil[start:start + step], queries[start:start + step],
                                  labels=names, method_name=method, files=files,
                                  corpora=list(corpora) if corpora else None)
            out += record_scored(self._workspace, scored, labels=names, stream=stream, method_name=method)
        return out

    def stream(self, name: str) -> StreamStats:
        """A stream's running statistics (`xmore streams show`)."""
        return self._workspace.history.stream(name)

    def events(self, name: str, *, last: int | None = None) -> list[Event]:
        """A stream's events, oldest first (the last `last` only, if given)."""
        return self._workspace.history.events(name, last=last)


def open(home: str | Path | None = None, **settings) -> Index:  # noqa: A001 - the entry point's name
    """An Index over `home` (default: XMORE_HOME or ./xmore-data) with these settings.

    Keyword settings are Settings' fields (coarse_model, fine_model, classifier_model,
    qdrant_url, database_url, device, coarse_k, fine_k, ...); unset ones come from the
    XMORE_* variables, then the defaults.
    """
    return Index(Settings.from_env(home=Path(home) if home is not None else None, **settings))
