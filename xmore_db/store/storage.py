"""How the collections hold their vectors: storage profiles and the knobs they bundle.

A profile names one choice of three knobs, what matters for memory:

    exact    float32 vectors in RAM, no quantization: today's layout, exact graph search
    compact  float16 vectors on disk, a scalar (int8) quantized copy in RAM; searches
             rescore oversampling × limit quantized candidates with the originals (2×)
    tiny     float16 vectors on disk, a binary (1 bit a dimension) copy in RAM, rescored (4×)

Any other combination of the knobs is named `custom`. Beside the profile, the HNSW
graph's `m` and `ef_construct` and the keyword index on `corpus` are settings too.
Everything but the oversampling shapes what the engine builds: it is recorded with
the collections at `xmore init` (like the models), and opening them with settings
that ask for something else fails before any write (checks.check_storage). The
oversampling is a search parameter: recorded as the store's default, a setting
overrides it per process.

Only `images` gets the quantized copy and the graph: `texts` is searched by an exact
scan of the 128 listed candidates, so its originals follow the datatype and the
placement and nothing more. A store made before profiles existed records none and
reads as `exact` with m 16, ef_construct 100 and the corpus index: what it was built with.

The graph's default ef_construct is 200, not the engine's 100: on clustered data whose
sub-topics hold about 200 points (benchmarks/scale.py), a 1M-pair `exact` graph built
at 100 never found more than 0.959 of the exact top-128 (beam 4,096), one built at 200
found 0.978 at beam 128 and 0.998 at 384; its build took 1.26 times as long.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import QUANTIZATIONS, STORAGE_PROFILES, VECTOR_DATATYPES

if TYPE_CHECKING:
    from ..config import Settings

# The key of the storage entry in the store record (Edge) or the collections' metadata (server).
STORAGE_KEY = "storage"
DEFAULT_HNSW_EF_CONSTRUCT = 200
LEGACY_HNSW_EF_CONSTRUCT = 100  # what stores recording no storage (made before profiles) were built with
# Per quantization: how many quantized candidates per hit wanted are rescored with the originals.
# Binary codes rank coarsely (recall@128 about 0.75 before rescoring on clustered CLIP-like data), int8 finely
# (about 0.99), so binary needs the wider pool; README, *Storage profiles*, has the measurements.
DEFAULT_OVERSAMPLING = {"scalar": 2.0, "binary": 4.0}
# The engine's knobs each profile sets: (datatype, quantization, vectors_on_disk).
PROFILE_KNOBS = {
    "exact": ("float32", "none", False),
    "compact": ("float16", "scalar", True),
    "tiny": ("float16", "binary", True),
}
CUSTOM = "custom"
assert tuple(PROFILE_KNOBS) == STORAGE_PROFILES


@dataclass(frozen=True)
class Storage:
    """One store's storage: what the engine builds (all but `oversampling`) and how quantized searches rescore.

    `oversampling` is None without quantization (there is nothing to rescore).
    """

    datatype: str = "float32"  # of the stored originals: float32 | float16
    quantization: str = "none"  # a copy of `images`' vectors, held in RAM, searched first: none | scalar | binary
    vectors_on_disk: bool = False  # originals on disk (memory-mapped, read on use) instead of held in RAM
    oversampling: float | None = None
    hnsw_m: int = 16  # links per node in `images`' graph
    hnsw_ef_construct: int = DEFAULT_HNSW_EF_CONSTRUCT  # the beam width while building it (see above)
    corpus_index: bool = True  # a keyword index on the `corpus` payload field

    def __post_init__(self) -> None:
        if self.datatype not in VECTOR_DATATYPES:
            raise ValueError(f"datatype {self.datatype!r} is not one of {', '.join(VECTOR_DATATYPES)}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization {self.quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
        for name in ("vectors_on_disk", "corpus_index"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name, least in (("hnsw_m", 2), ("hnsw_ef_construct", 4)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer at least {least}, got {value!r}")
        if self.quantization == "none":
            object.__setattr__(self, "oversampling", None)
        elif self.oversampling is None:
            object.__setattr__(self, "oversampling", DEFAULT_OVERSAMPLING[self.quantization])
        elif isinstance(self.oversampling, bool) or not isinstance(self.oversampling, (int, float)) \
                or not 1 <= self.oversampling < float("inf"):
            raise ValueError(f"oversampling must be a finite number at least 1, got {self.oversampling!r}")
        else:
            object.__setattr__(self, "oversampling", float(self.oversampling))

    @property
    def profile(self) -> str:
        """The profile whose knobs these are, or `custom`."""
        knobs = (self.datatype, self.quantization, self.vectors_on_disk)
        return next((name for name, bundle in PROFILE_KNOBS.items() if bundle == knobs), CUSTOM)

    def build(self) -> dict[str, object]:
        """What the engine builds from these settings: the values compared when a store is opened."""
        return {name: value for name, value in self.to_dict().items() if name not in ("profile", "oversampling")}

    def to_dict(self) -> dict[str, object]:
        """The record kept with the collections and printed by `status --json` (`storage`)."""
        return {"profile": self.profile, **dataclasses.asdict(self)}

    @classmethod
    def from_record(cls, record: object) -> Storage:
        """A recorded storage entry; None (a store made before profiles) reads as `exact` as it was built.

        ValueError on an entry that is not one of ours.
        """
        if record is None:
            return cls(hnsw_ef_construct=LEGACY_HNSW_EF_CONSTRUCT)
        if not isinstance(record, dict):
            raise ValueError("the storage entry is not a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{"hnsw_ef_construct": LEGACY_HNSW_EF_CONSTRUCT,
                      **{name: value for name, value in record.items() if name in known}})

    def describe(self) -> str:
        """One line for people: `compact: float16 vectors on disk, scalar (int8) quantization in RAM, …`."""
        return f"{self.profile}: {self.details()}"

    def details(self) -> str:
        """The knobs, for people: `float16 vectors on disk, scalar (int8) quantization in RAM, …`."""
        place = "on disk" if self.vectors_on_disk else "in RAM"
        if self.quantization == "none":
            quantized = "no quantization"
        else:
            bits = {"scalar": "int8", "binary": "1 bit a dimension"}[self.quantization]
            quantized = (f"{self.quantization} ({bits}) quantization in RAM, "
                         f"rescored at oversampling {self.oversampling:g}")
        index = "keyword index on corpus" if self.corpus_index else "no corpus index"
        return (f"{self.datatype} vectors {place}, {quantized}; "
                f"HNSW m {self.hnsw_m}, ef_construct {self.hnsw_ef_construct}; {index}")


# Each knob's Settings field (its XMORE_* variable and option are in config.Settings.ENV, STORAGE_OPTIONS).
SETTING_OF = {"datatype": "vector_datatype", "quantization": "quantization", "vectors_on_disk": "vectors_on_disk",
              "oversampling": "oversampling", "hnsw_m": "hnsw_m", "hnsw_ef_construct": "hnsw_ef_construct",
              "corpus_index": "corpus_index"}


@dataclass(frozen=True)
class StorageRequest:
    """What the settings ask of the storage; None: not asked.

    A new store takes the named profile (`exact` if none), then each knob given.
    An existing store keeps what it recorded: the request must resolve to the same
    build (checks.check_storage), and only its oversampling, if given, applies.
    """

    profile: str | None = None
    datatype: str | None = None
    quantization: str | None = None
    vectors_on_disk: bool | None = None
    oversampling: float | None = None
    hnsw_m: int | None = None
    hnsw_ef_construct: int | None = None
    corpus_index: bool | None = None

    def __post_init__(self) -> None:
        if self.profile is not None and self.profile not in PROFILE_KNOBS:
            raise ValueError(f"storage profile {self.profile!r} is not one of {', '.join(PROFILE_KNOBS)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> StorageRequest:
        return cls(profile=settings.storage_profile,
                   **{knob: getattr(settings, setting) for knob, setting in SETTING_OF.items()})

    def given(self) -> dict[str, object]:
        """The knobs asked for, by name (`profile` first), in the order of the fields."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    def resolve(self, recorded: Storage | None) -> Storage:
        """The storage these settings ask for, over a store that records `recorded` (None: a new store).

        The profile sets the vectors' three knobs; the graph's and the corpus index stay the
        store's (a new store's: the defaults) unless given themselves.
        """
        base = recorded or Storage()
        given = self.given()
        knobs = dict(zip(("datatype", "quantization", "vectors_on_disk"), PROFILE_KNOBS[self.profile], strict=True)
                     ) if self.profile else {}
        knobs.update({name: value for name, value in given.items() if name != "profile"})
        if knobs.get("quantization", base.quantization) != base.quantization and "oversampling" not in given:
            knobs["oversampling"] = None  # the new quantization's default, not the old one's
        return dataclasses.replace(base, **knobs)

    def searched(self, recorded: Storage) -> Storage:
        """`recorded` with the oversampling asked for, if any: what searches use."""
        if self.oversampling is None or recorded.quantization == "none":
            return recorded
        return dataclasses.replace(recorded, oversampling=self.oversampling)
