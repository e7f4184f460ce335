"""The systems named by the settings, opened lazily and closed together.

Commands that only read the history never load a model; commands that never
touch vectors never open the store (the embedded store allows one process).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from .config import ModelSpec, Settings

if TYPE_CHECKING:
    from .history import ConfidenceHistory, Database
    from .history.units import UnitLedger
    from .models import ClipEncoder
    from .store import CaptionCache, Provenance, VectorStore

ROLES = ("coarse", "fine", "classifier")


class Workspace:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._store: VectorStore | None = None
        self._store_checked = False

    def spec(self, role: str) -> ModelSpec:
        return {"coarse": self.settings.coarse, "fine": self.settings.fine,
                "classifier": self.settings.classifier}[role]

    def encoder(self, role: str) -> ClipEncoder:
        from .models import load_encoder

        return load_encoder(
            self.spec(role),
            device=self.settings.device,
            cache_dir=self.settings.model_cache_dir,
            batch_size=self.settings.batch_size,
            role=role,
        )

    def provenance(self) -> Provenance:
        """What the collections must have been built with, known without loading weights."""
        from .models import embed_dim
        from .store import Provenance

        coarse, fine = self.settings.coarse, self.settings.fine
        return Provenance(
            coarse_model=str(coarse), coarse_dim=embed_dim(coarse),
            fine_model=str(fine), fine_dim=embed_dim(fine),
        )

    @cached_property
    def reads_caption_cache(self) -> bool:
        """Whether classification may read the store's caption cache: on, and made for this classifier."""
        return self.settings.caption_cache and self.store().caption_cache() == self.caption_cache()

    def caption_cache(self) -> CaptionCache:
        """The caption cache the configured classifier would fill, known without loading weights."""
        from .models import embed_dim
        from .store import CaptionCache

        classifier = self.settings.classifier
        return CaptionCache(model=str(classifier), dim=embed_dim(classifier))

    def raw_store(self) -> VectorStore:
        """The store, not yet checked against the configured models."""
        if self._store is None:
            from .store import open_store

            self._store = open_store(self.settings)
        return self._store

    def store(self) -> VectorStore:
        """The store, checked against the configured models before its first use."""
        store = self.raw_store()
        if not self._store_checked:
            store.open(self.provenance())
            self._store_checked = True
        return store

    @cached_property
    def database(self) -> Database:
        """The history database, shared by the confidence history and the unit ledger."""
        from .history import Database

        return Database(self.settings.effective_database_url)

    @cached_property
    def history(self) -> ConfidenceHistory:
        from .history import ConfidenceHistory

        return ConfidenceHistory(self.database)

    @cached_property
    def ledger(self) -> UnitLedger:
        """The ingest work units of every corpus."""
        from .history.units import UnitLedger

        return UnitLedger(self.database)

    @property
    def prompt_cache_dir(self):
        return self.settings.home / "cache"

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store, self._store_checked = None, False
        if "database" in self.__dict__:
            self.database.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def initialise(settings: Settings) -> dict:
    """Create the two collections and migrate the history database (what `xmore init` does).

    Every configured model's weights are checked first (the store records these
    models for good), and the database is reached before any write. Returns
    what was done, as `xmore init --json` prints it.
    """
    from dataclasses import asdict

    from .models.weights import ROLE_ENV, check_weights

    for role in ROLE_ENV:
        check_weights(getattr(settings, role), cache_dir=settings.model_cache_dir, role=role)
    settings.home.mkdir(parents=True, exist_ok=True)
    with Workspace(settings) as ws:
        previous = ws.history.revision()  # fails early, before any write, if the database is unreachable
        provenance = ws.provenance()
        store = ws.raw_store()
        created = store.init(provenance)
        revision = ws.history.migrate()
        return {
            "vector_backend": store.backend, "vector_location": store.location,
            "collections_created": created, "provenance": asdict(provenance),
            "storage": store.storage().to_dict(),
            "database": settings.masked()["database_url"], "previous_revision": previous,
            "revision": revision,
        }
