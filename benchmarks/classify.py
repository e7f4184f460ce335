"""Classification end to end on the CPU, per image and per stage, against the authors' variant.

Real architectures with random weights (timing is honest, accuracy is not):
ViT-B-32 (coarse), ViT-L-14 (fine), RN50 (classifier). The corpus is synthetic:
N pairs of 512-d image and 768-d caption embeddings in an embedded Qdrant Edge
store, with short web-like captions.

Ours: the fine stage compares the query's ViT-L-14 image embedding with caption
embeddings stored at ingest (a filtered search). The authors' released code
instead re-encodes the K=128 candidate captions with ViT-L-14 for every query;
the same run times that variant, and the report gives the ratio.

CODER columns: a synthetic text bank per class (name, 2 synonyms, 20 attribute
phrases, 3 analogies; one-vs-one phrases against 2 other classes, 7 templates
each), encoded once before the timed runs (its time is reported apart). CODER*
needs only the classifier's image embedding; coder+captions adds the retrieval.

RECO columns, as `xmore classify --method reco-mean|reco` runs them: the three image
encodings and the two-stage search, the captions of the first k=10 coarse neighbours
(a filtered search) read from the caption cache, then the fusion (reco: an untrained
fusion layer of the classifier's size, the same arithmetic as a trained one). The
text side is off here (the coarse model is not the classifier). zeroshot is the
classifier's image encoding alone, the baseline of the overheads.

    .venv/bin/python benchmarks/classify.py --images 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval import make_data  # noqa: E402

from xmore_db import method  # noqa: E402
from xmore_db.classify import weigh  # noqa: E402
from xmore_db.coder.bank import ClassTexts, TextBank  # noqa: E402
from xmore_db.coder.encode import encode_bank  # noqa: E402
from xmore_db.config import DEFAULT_TEMPLATE  # noqa: E402
from xmore_db.history import ConfidenceHistory, Decision  # noqa: E402
from xmore_db.methods.coder import coder_scores, ovo_rerank  # noqa: E402
from xmore_db.models import class_embeddings, load_encoder  # noqa: E402
from xmore_db.retrieval import retrieve  # noqa: E402
from xmore_db.store import CaptionCache, PairBatch, Provenance  # noqa: E402
from xmore_db.toy import write_queries  # noqa: E402

WORDS = "red green blue small large photo of a the dog cat flower car plane on white background stock image".split()


class Stopwatch:
    def __init__(self):
        self.totals: dict[str, float] = {}

    def time(self, stage: str, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.totals[stage] = self.totals.get(stage, 0.0) + time.perf_counter() - start
        return out


def caption(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8, help="query images, classified one at a time")
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--coarse", default="ViT-B-32")
    parser.add_argument("--fine", default="ViT-L-14")
    parser.add_argument("--classifier", default="RN50")
    parser.add_argument("-K", type=int, default=128)
    parser.add_argument("-k", type=int, default=16)
    parser.add_argument("--hnsw-ef", type=int, default=2048, help="as XMORE_HNSW_EF")
    parser.add_argument("--labels", type=int, default=100, help="number of classes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rng = random.Random(0)
    tmp = Path(tempfile.mkdtemp(prefix="xmore-bench-classify-"))
    print("loading models (random weights)", file=sys.stderr)
    coarse = load_encoder(args.coarse, batch_size=1)
    fine = load_encoder(args.fine, batch_size=1)
    classifier = load_encoder(args.classifier, batch_size=32)
    fine_texts = load_encoder(args.fine, batch_size=args.K)  # the authors' variant encodes K captions at once

    from xmore_db.store.edge import EdgeStore

    X, T, _, _ = make_data(args.pairs, 1, coarse.dim, fine.dim, seed=0)
    captions = [caption(rng) for _ in range(args.pairs)]
    store = EdgeStore(tmp / "edge")
    store.init(Provenance(coarse_model=args.coarse, coarse_dim=coarse.dim, fine_model=args.fine, fine_dim=fine.dim))
    # The caption cache: the classifier's embedding of every caption, as ingest stores it.
    store.set_caption_cache(CaptionCache(model=args.classifier, dim=classifier.dim))
    cached = np.random.default_rng(1).standard_normal((args.pairs, classifier.dim)).astype(np.float32)
    cached /= np.linalg.norm(cached, axis=1, keepdims=True)
    for start in range(0, args.pairs, 4096):
        stop = min(start + 4096, args.pairs)
        store.upsert_pairs(PairBatch(corpus="bench", keys=[str(i) for i in range(start, stop)],
                                     captions=captions[start:stop], image_vectors=X[start:stop],
                                     text_vectors=T[start:stop], caption_vectors=cached[start:stop]))
    store.optimize()
    history = ConfidenceHistory(f"sqlite:///{tmp}/history.sqlite3")
    history.migrate()
    labels = [f"class {i}" for i in range(args.labels)]
    prompts = class_embeddings(classifier, labels, DEFAULT_TEMPLATE, None)
    from xmore_db.images import load_image

    n = len(labels)
    bank_spec = TextBank(
        classes={label: ClassTexts(synonyms=(f"{label} kind", f"{label} sort"),
                                   attributes=tuple(caption(rng) for _ in range(20)),
                                   analogies=tuple(labels[(i + j) % n] for j in (1, 2, 3)))
                 for i, label in enumerate(labels)},
        ovo={label: {labels[(i + j) % n]: (caption(rng),) for j in (1, 2)} for i, label in enumerate(labels)})
    start = time.perf_counter()
    bank = encode_bank(bank_spec, fingerprint="bench", encoder=lambda: classifier, cache_dir=None, threshold=0.1)
    bank_seconds = time.perf_counter() - start
    print(f"text bank: {len(bank.texts)} class texts and {len(bank.ovo_texts)} one-vs-one texts encoded once in "
          f"{bank_seconds:.1f} s", file=sys.stderr)

    paths, _ = write_queries(tmp / "queries", args.images + 1, seed=3)
    images = [load_image(p).resize((224, 224)) for p in paths]

    def ours(image, watch: Stopwatch, cache: bool = True) -> str:
        e_cls = watch.time("encode image: classifier", classifier.encode_images, [image])
        e_coarse = watch.time("encode image: coarse", coarse.encode_images, [image])
        e_fine = watch.time("encode image: fine", fine.encode_images, [image])
        [found] = watch.time("search: coarse + fine", retrieve, store, e_coarse, e_fine,
                             coarse_k=args.K, fine_k=args.k, hnsw_ef=args.hnsw_ef)
        if cache:
            emb = watch.time("read cached caption embeddings", store.caption_vectors,
                             [h.pair_id for h in found.captions])
        else:
            emb = watch.time("encode captions: classifier", classifier.encode_texts,
                             [h.caption for h in found.captions])
        return finish(watch, e_cls, emb)

    def ours_uncached(image, watch: Stopwatch) -> str:
        return ours(image, watch, cache=False)

    def authors(image, watch: Stopwatch) -> str:
        e_cls = watch.time("encode image: classifier", classifier.encode_images, [image])
        e_coarse = watch.time("encode image: coarse", coarse.encode_images, [image])
        e_fine = watch.time("encode image: fine", fine.encode_images, [image])
        hits = watch.time("search: coarse + captions", store.coarse_search, e_coarse, limit=args.K)[0]
        # The candidates' captions, then all K re-encoded with the fine text encoder per query.
        candidates = [[h.pair_id for h in hits]]
        texts = watch.time("search: coarse + captions", store.fine_search, e_fine, candidates, limit=args.K)[0]
        emb_fine = watch.time("re-encode K captions: fine", fine_texts.encode_texts, [h.caption for h in texts])
        order = np.argsort(-(emb_fine @ e_fine[0]))[:args.k]
        chosen = [texts[i].caption for i in order]
        emb = watch.time("encode captions: classifier", classifier.encode_texts, chosen)
        return finish(watch, e_cls, emb)

    def coder_star(image, watch: Stopwatch) -> str:
        e_cls = watch.time("encode image: classifier", classifier.encode_images, [image])
        p = watch.time("CODER scores (and CODER* re-rank)", lambda: ovo_rerank(
            e_cls, coder_scores(e_cls, bank, classifier.logit_scale), bank.ovo_texts, bank.ovo_pair, bank.threshold))
        return record(watch, p[0], None)

    def coder_captions(image, watch: Stopwatch) -> str:
        e_cls = watch.time("encode image: classifier", classifier.encode_images, [image])
        e_coarse = watch.time("encode image: coarse", coarse.encode_images, [image])
        e_fine = watch.time("encode image: fine", fine.encode_images, [image])
        [found] = watch.time("search: coarse + fine", retrieve, store, e_coarse, e_fine,
                             coarse_k=args.K, fine_k=args.k, hnsw_ef=args.hnsw_ef)
        emb = watch.time("read cached caption embeddings", store.caption_vectors, [h.pair_id for h in found.captions])
        scores = watch.time("CODER scores (and CODER* re-rank)", coder_scores, np.concatenate([e_cls, emb]), bank,
                            classifier.logit_scale)
        p = method.softmax(scores)
        return record(watch, p[0], p[1:].mean(axis=0))

    from xmore_db.methods.reco import reco_mean
    from xmore_db.reco.layers import build_layers

    reco_layers = build_layers(classifier.dim, k=10, text=False, seed=0)

    def zeroshot(image, watch: Stopwatch) -> str:
        e_cls = watch.time("encode image: classifier", classifier.encode_images, [image])
        return record(watch, method.class_probabilities(e_cls[0], prompts, classifier.logit_scale), None)

    def reco(image, watch: Stopwatch, fuse=None) -> str:
        e_cls = watch.time("encode image: classifier", classifier.encode_images, [image])
        e_coarse = watch.time("encode image: coarse", coarse.encode_images, [image])
        e_fine = watch.time("encode image: fine", fine.encode_images, [image])
        [found] = watch.time("search: coarse + fine", retrieve, store, e_coarse, e_fine,
                             coarse_k=args.K, fine_k=args.k, hnsw_ef=args.hnsw_ef)
        nearest = [h.pair_id for h in found.coarse[:10]]
        hits = watch.time("RECO: captions of the first k coarse neighbours", store.fine_search, e_fine, [nearest],
                          limit=10)[0]
        emb = watch.time("read cached caption embeddings", store.caption_vectors, [h.pair_id for h in hits])
        fuse = fuse or (lambda q, r: reco_mean(q, r, alpha=1.0, logit_scale=classifier.logit_scale))
        refined = watch.time("RECO: fusion", fuse, e_cls, emb[None])
        return record(watch, method.class_probabilities(refined[0], prompts, classifier.logit_scale), None)

    def reco_trained(image, watch: Stopwatch) -> str:
        return reco(image, watch, fuse=reco_layers.refine_images)

    def finish(watch: Stopwatch, e_cls, emb) -> str:
        p_image = method.class_probabilities(e_cls[0], prompts, classifier.logit_scale)
        p_text = method.text_probabilities(emb, prompts, classifier.logit_scale)
        return record(watch, p_image, p_text)

    def record(watch: Stopwatch, p_image, p_text) -> str:
        c_i = float(method.confidence(p_image))
        c_t = None if p_text is None else float(method.confidence(p_text))

        def decide(stats):
            p, w_i, w_t = weigh(stats, normalize="minmax", p_image=p_image, p_text=p_text, c_image=c_i, c_text=c_t)
            return Decision(w_image=w_i, w_text=w_t, prediction=labels[int(np.argmax(p))])

        return watch.time("SQL event write", history.record, "bench", c_image=c_i, c_text=c_t,
                          normalize="minmax", query=None, decide=decide).prediction

    results = {}
    for name, fn in (("ours", ours), ("ours, no caption cache", ours_uncached), ("authors", authors),
                     ("CODER*", coder_star), ("coder+captions", coder_captions), ("zeroshot", zeroshot),
                     ("reco-mean", reco), ("reco", reco_trained)):
        fn(images[-1], Stopwatch())  # warm up
        watch = Stopwatch()
        start = time.perf_counter()
        for image in images[:args.images]:
            fn(image, watch)
        total = time.perf_counter() - start
        results[name] = {"per_image_s": total / args.images,
                         "stages_ms": {k: v / args.images * 1e3 for k, v in watch.totals.items()}}
    ratio = results["authors"]["per_image_s"] / results["ours"]["per_image_s"]
    ratio_uncached = results["authors"]["per_image_s"] / results["ours, no caption cache"]["per_image_s"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    print(f"\nPer image, one at a time, {args.images} images; coarse {args.coarse}, fine {args.fine}, classifier "
          f"{args.classifier} (random weights); {args.pairs} pairs; K={args.K}, k={args.k}; {machine}")
    names = list(results)
    stages = list(dict.fromkeys(stage for name in names for stage in results[name]["stages_ms"]))
    print("| stage | " + " | ".join(f"{name}, ms" for name in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for stage in stages:
        cells = [results[name]["stages_ms"].get(stage) for name in names]
        print(f"| {stage} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
    print("| **total per image** | " + " | ".join(f"**{results[n]['per_image_s'] * 1e3:.0f}**" for n in names) + " |")
    print(f"authors' variant / ours: {ratio:.1f}x with the caption cache, {ratio_uncached:.1f}x without")
    print(f"CODER text bank ({len(bank.texts)} + {len(bank.ovo_texts)} texts): encoded once, {bank_seconds:.1f} s")
    base = results["zeroshot"]["per_image_s"]
    print("overhead over zero-shot per image: " + ", ".join(
        f"{name} +{(results[name]['per_image_s'] - base) * 1e3:.0f} ms" for name in ("reco-mean", "reco")))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ratio": ratio, "ratio_uncached": ratio_uncached,
                                         "bank_seconds": bank_seconds, "machine": machine}, indent=2))
    store.close()
    history.close()


if __name__ == "__main__":
    main()
