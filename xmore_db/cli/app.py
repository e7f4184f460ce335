"""The `xmore` command: parse, call the core, render. No method logic lives here."""

from __future__ import annotations

import sys

import typer

from . import commands, corpora, keys, optimize, pairs, reco, remote, search, serve, streams, textbank
from . import eval as eval_cli
from . import options as opt
from .base import make_app

app = make_app(
    "xmore: retrieval-augmented CLIP zero-shot classification (X-MoRe) over Qdrant.\n\n"
    "Corpus images and captions live in two Qdrant collections; each query's image and caption "
    "predictions are weighted by their confidence relative to the stream of queries so far, "
    "kept in a SQL database."
)


@app.callback()
def root(
    ctx: typer.Context,
    home: opt.Home = None,
    qdrant_url: opt.QdrantUrl = None,
    qdrant_api_key: opt.QdrantApiKey = None,
    database_url: opt.DatabaseUrl = None,
    coarse_model: opt.CoarseModel = None,
    fine_model: opt.FineModel = None,
    classifier_model: opt.ClassifierModel = None,
    device: opt.Device = None,
    model_cache: opt.ModelCache = None,
    batch_size: opt.BatchSize = None,
    hnsw_ef: opt.HnswEf = None,
    recall_target: opt.RecallTarget = None,
    caption_cache: opt.CaptionCacheOption = None,
    reco_alpha: opt.RecoAlpha = None,
    reco_k: opt.RecoK = None,
    coder_threshold: opt.CoderThreshold = None,
    server: opt.Server = None,
    api_key: opt.ApiKey = None,
    storage_profile: opt.StorageProfile = None,
    vector_datatype: opt.VectorDatatype = None,
    quantization: opt.Quantization = None,
    vectors_on_disk: opt.VectorsOnDisk = None,
    oversampling: opt.Oversampling = None,
    hnsw_m: opt.HnswM = None,
    hnsw_ef_construct: opt.HnswEfConstruct = None,
    corpus_index: opt.CorpusIndex = None,
):
    """Settings given here apply to every command; each also reads its XMORE_* variable."""
    # Settings errors surface when a command runs, through the group's error mapping.
    ctx.obj = dict(
        home=home, qdrant_url=qdrant_url, qdrant_api_key=qdrant_api_key, database_url=database_url,
        coarse_model=coarse_model, fine_model=fine_model, classifier_model=classifier_model,
        device=device, model_cache_dir=model_cache, batch_size=batch_size, hnsw_ef=hnsw_ef,
        recall_target=recall_target,
        caption_cache=caption_cache, reco_alpha=reco_alpha, reco_k=reco_k,
        coder_threshold=coder_threshold,
        storage_profile=storage_profile, vector_datatype=vector_datatype, quantization=quantization,
        vectors_on_disk=vectors_on_disk, oversampling=oversampling, hnsw_m=hnsw_m,
        hnsw_ef_construct=hnsw_ef_construct, corpus_index=corpus_index,
    )
    remote.remember(ctx, server, api_key)  # not in ctx.obj: that holds Settings' fields only


commands.register(app)
eval_cli.register(app)
optimize.register(app)
pairs.register(app)
search.register(app)
serve.register(app)
app.add_typer(streams.app, name="streams")
app.add_typer(corpora.app, name="corpora")
app.add_typer(textbank.app, name="textbank")
app.add_typer(reco.app, name="reco")
app.add_typer(keys.app, name="keys")


def main() -> None:
    app(prog_name="xmore")


if __name__ == "__main__":
    sys.exit(main())
