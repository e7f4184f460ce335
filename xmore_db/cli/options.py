"""Option aliases shared by commands, each with its XMORE_* variable.

The names match `Settings.ENV`, so the CLI and `Settings.from_env()` agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULT_TEMPLATE, QUANTIZATIONS, STORAGE_PROFILES, VECTOR_DATATYPES, Settings

_ENV = Settings.ENV

Home = Annotated[
    Path | None,
    typer.Option("--home", envvar=_ENV["home"], help="Data directory (embedded store, SQLite history, caches).",
                 show_default="./xmore-data"),
]
QdrantUrl = Annotated[
    str | None,
    typer.Option("--qdrant-url", envvar=_ENV["qdrant_url"],
                 help="Qdrant server URL (http://host:6333). Unset: the embedded Qdrant Edge store under --home. "
                      "file:PATH uses qdrant-client's pure-Python local mode (tests, tiny corpora)."),
]
QdrantApiKey = Annotated[
    str | None,
    typer.Option("--qdrant-api-key", envvar=_ENV["qdrant_api_key"], help="API key for the Qdrant server.",
                 show_default=False),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar=_ENV["database_url"],
                 help="SQLAlchemy URL of the confidence history, e.g. postgresql+psycopg://user@host/db. "
                      "Unset: SQLite file under --home."),
]
CoarseModel = Annotated[
    str | None,
    typer.Option("--coarse-model", envvar=_ENV["coarse_model"],
                 help="ARCH[:PRETRAINED] of the corpus' image embeddings (coarse stage).",
                 show_default="ViT-B-32:openai"),
]
FineModel = Annotated[
    str | None,
    typer.Option("--fine-model", envvar=_ENV["fine_model"],
                 help="ARCH[:PRETRAINED] ranking captions against the query image (fine stage).",
                 show_default="ViT-L-14:openai"),
]
ClassifierModel = Annotated[
    str | None,
    typer.Option("--classifier-model", envvar=_ENV["classifier_model"],
                 help="ARCH[:PRETRAINED] of the CLIP being improved.", show_default="RN50:openai"),
]
Device = Annotated[
    str | None,
    typer.Option("--device", envvar=_ENV["device"], help="Torch device for the encoders (cpu, cuda, cuda:1).",
                 show_default="cpu"),
]
ModelCache = Annotated[
    Path | None,
    typer.Option("--model-cache", envvar=_ENV["model_cache_dir"],
                 help="Where open_clip weights are cached (default: the Hugging Face cache)."),
]
BatchSize = Annotated[
    int | None,
    typer.Option("--batch-size", envvar=_ENV["batch_size"], min=1, help="Images or texts per encoder batch.",
                 show_default="32"),
]
HnswEf = Annotated[
    int | None,
    typer.Option("--hnsw-ef", envvar=_ENV["hnsw_ef"], min=1,
                 help="Beam width of the coarse stage's HNSW search, overriding the one the store measured for "
                      "--recall-target: wider finds more of the exact top-K at some cost in latency.",
                 show_default="the store's calibrated beam"),
]
RecallTarget = Annotated[
    float | None,
    typer.Option("--recall-target", envvar=_ENV["recall_target"],
                 help="Share of the exact top-K the coarse search should find: the store searches with the "
                      "smallest beam that `xmore optimize` measured to reach it (README, Search beam).",
                 show_default="0.95"),
]
CaptionCacheOption = Annotated[
    bool | None,
    typer.Option("--caption-cache/--no-caption-cache", envvar=_ENV["caption_cache"],
                 help="Store the classifier's embedding of each caption in `texts` at ingest, so classify encodes "
                      "no caption at query time (`xmore cache-captions` fills it for existing corpora).",
                 show_default="on"),
]
RecoAlpha = Annotated[
    float | None,
    typer.Option("--reco-alpha", envvar=_ENV["reco_alpha"], min=0.0,
                 help="reco-mean: the weight of the similarity-weighted mean of the retrieved embeddings added to "
                      "each query before renormalising (0: zero-shot).", show_default="1.0"),
]
RecoK = Annotated[
    int | None,
    typer.Option("--reco-k", envvar=_ENV["reco_k"], min=1,
                 help="RECO: items retrieved per query (reco-mean; the default of `xmore reco train --k`; "
                      "a trained fusion layer uses the k it was trained with).", show_default="10"),
]
CoderThreshold = Annotated[
    float | None,
    typer.Option("--coder-threshold", envvar=_ENV["coder_threshold"],
                 help="CODER*: re-rank the top 5 classes by the one-vs-one texts when the softmax gap between the "
                      "first two is below this (0 to 1; 0: never; the authors tune it per dataset, 0.05 to 0.6).",
                 show_default="0.1"),
]
CoarseK = Annotated[
    int | None,
    typer.Option("--coarse-k", "-K", envvar=_ENV["coarse_k"], min=1,
                 help="Corpus images kept by the coarse stage.", show_default="128"),
]
FineK = Annotated[
    int | None,
    typer.Option("--fine-k", "-k", envvar=_ENV["fine_k"], min=1,
                 help="Captions kept by the fine stage.", show_default="16"),
]
Template = Annotated[
    str | None,
    typer.Option("--template", envvar=_ENV["template"], help="Class prompt; {label} is replaced by the class name.",
                 show_default=DEFAULT_TEMPLATE),
]
def _normalization(value: str | None) -> str | None:
    """A usage error (exit 2) naming the valid values, like every other malformed argument."""
    from ..config import NORMALIZATIONS

    if value is not None and value not in NORMALIZATIONS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(NORMALIZATIONS)}")
    return value


Normalize = Annotated[
    str | None,
    typer.Option("--normalize", envvar=_ENV["normalize"], callback=_normalization,
                 help="Confidence adjustment over the stream: minmax (the paper), l1 (the authors' code: "
                      "c_t / sum of c so far) or none (equal confidence).",
                 show_default="minmax"),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of text.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

Method = Annotated[str, typer.Option(
    "--method", help="Classification method: xmore (the paper), zeroshot (CLIP alone), captions (the caption "
    "ensemble alone), xmore-indirect (coarse-order captions), and the CODER and RECO methods where they are "
    "installed (coder, coder-star, coder+captions need --textbank; reco-mean needs nothing more, reco and "
    "xmore+reco need --fusion).")]
TextBank = Annotated[Path | None, typer.Option(
    "--textbank", help="A CODER text bank (JSON); the CODER methods need it.")]
Fusion = Annotated[Path | None, typer.Option(
    "--fusion", help="A RECO fusion layer (safetensors, from `xmore reco train`); reco and xmore+reco need it, "
    "reco-mean does not. RECO refines the image with its k nearest corpus images' captions and, only when the "
    "coarse model is the classifier (`xmore status` says), each class prompt with its nearest captions' images.")]

Corpora = Annotated[list[str] | None, typer.Option(
    "--corpus", help="Retrieve only from this corpus (repeat for several); a payload filter, indexed.")]

Server = Annotated[str | None, typer.Option(
    "--server", envvar="XMORE_SERVER",
    help="URL of an `xmore serve` (http://host:8000): classify, retrieve, search, status and streams send their "
         "work there and print what they print locally, without loading models or opening the store; the other "
         "commands run locally only and refuse it.")]
ApiKey = Annotated[str | None, typer.Option(
    "--api-key", envvar="XMORE_API_KEY", show_default=False,
    help="API key for --server, sent as `Authorization: Bearer KEY` (never printed).")]


def _one_of(choices: tuple[str, ...]):
    """A callback making a value outside `choices` a usage error (exit 2) naming the valid ones."""
    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value
    return check


# Storage (README, *Storage profiles*): chosen at `xmore init` and recorded with the collections; unset, an
# existing store uses what it recorded. Asking an existing store for other storage is refused before any write.
StorageProfile = Annotated[
    str | None,
    typer.Option("--storage-profile", envvar=_ENV["storage_profile"], callback=_one_of(STORAGE_PROFILES),
                 help="How `xmore init` stores the vectors: exact (float32 in RAM), compact (float16 on disk, an "
                      "int8 copy in RAM, searches rescored) or tiny (float16 on disk, a 1-bit copy in RAM, "
                      "rescored). Recorded with the store; unset, an existing store uses its own.",
                 show_default="exact for a new store"),
]
VectorDatatype = Annotated[
    str | None,
    typer.Option("--vector-datatype", envvar=_ENV["vector_datatype"], callback=_one_of(VECTOR_DATATYPES),
                 help="Expert: the stored vectors' type, float32 or float16, instead of the profile's (recorded "
                      "at init)."),
]
Quantization = Annotated[
    str | None,
    typer.Option("--quantization", envvar=_ENV["quantization"], callback=_one_of(QUANTIZATIONS),
                 help="Expert: the copy of the image vectors held in RAM and searched first, none, scalar (int8) "
                      "or binary (1 bit a dimension), instead of the profile's (recorded at init)."),
]
VectorsOnDisk = Annotated[
    bool | None,
    typer.Option("--vectors-on-disk/--vectors-in-ram", envvar=_ENV["vectors_on_disk"],
                 help="Expert: keep the original vectors on disk (memory-mapped, read on use) or in RAM, instead "
                      "of as the profile does (recorded at init)."),
]
Oversampling = Annotated[
    float | None,
    typer.Option("--oversampling", envvar=_ENV["oversampling"], min=1.0,
                 help="Quantized stores: candidates found in the quantized copy and rescored with the original "
                      "vectors, per hit wanted. A search setting: it overrides the one the store recorded.",
                 show_default="2 for scalar, 4 for binary"),
]
HnswM = Annotated[
    int | None,
    typer.Option("--hnsw-m", envvar=_ENV["hnsw_m"], min=2,
                 help="Links per node of the images' HNSW graph: more raise recall and memory (recorded at init).",
                 show_default="16"),
]
HnswEfConstruct = Annotated[
    int | None,
    typer.Option("--hnsw-ef-construct", envvar=_ENV["hnsw_ef_construct"], min=4,
                 help="Beam width while building that graph: wider builds slower and better (recorded at init).",
                 show_default="200"),
]
CorpusIndex = Annotated[
    bool | None,
    typer.Option("--corpus-index/--no-corpus-index", envvar=_ENV["corpus_index"],
                 help="A keyword index on the corpus field, which --corpus filters, corpus counts and deletes use "
                      "(recorded at init).", show_default="on"),
]
