"""The method registry, and `xmore classify --method` with its one-method-per-stream rule."""

from __future__ import annotations

import numpy as np
import pytest

from tests.cli import fails, ok, ok_json, xmore
from xmore_db.classify import classify_methods
from xmore_db.methods import MethodInputs, get_method, registry


def test_registry_lists_every_method_once_and_names_the_unknown():
    names = list(registry())
    assert names[:6] == ["zeroshot", "captions", "xmore", "xmore-l1", "xmore-none", "xmore-indirect"]
    assert len(set(names)) == len(names)
    with pytest.raises(ValueError, match="unknown method 'best': choose from zeroshot, captions"):
        get_method("best")
    assert "xmore-l1" not in classify_methods() and {"zeroshot", "xmore"} <= set(classify_methods())


def test_zeroshot_is_the_image_alone():
    inputs = MethodInputs(image_embeddings=np.array([[1.0, 0.0], [0.0, 1.0]]), prompts=np.eye(2),
                          logit_scale=np.log(3.0))
    result = get_method("zeroshot").modalities(inputs, 4)
    assert result.p_text is None and np.allclose(result.p_image, [[0.75, 0.25], [0.25, 0.75]])


def test_classify_by_method_and_one_method_per_stream(backend_env, corpus_dir, query_images, labels_file):
    ok("init")
    ok("ingest", corpus_dir, "--corpus", "shapes")
    zero = ok_json("classify", *query_images[:2], "--labels", labels_file, "--stream", "zs", "--method", "zeroshot")
    assert [r["method"] for r in zero] == ["zeroshot", "zeroshot"]
    assert all(r["p_text"] is None and r["captions"] == [] and r["normalize"] == "none" for r in zero)
    assert all(r["prediction"] == r["labels"][int(np.argmax(r["p_image"]))] for r in zero)
    # X-MoRe into the zero-shot stream: refused, one line, nothing recorded.
    line = fails("classify", query_images[2], "--labels", labels_file, "--stream", "zs")
    assert "stream 'zs' holds zeroshot results" in line and "use another stream name" in line
    shown = ok_json("streams", "show", "zs")
    assert shown["n_events"] == 2 and shown["method"] == "zeroshot"
    xm = ok_json("classify", query_images[2], "--labels", labels_file, "--stream", "xm")
    assert xm[0]["method"] == "xmore" and xm[0]["normalize"] == "minmax"
    bad = xmore("classify", query_images[2], "--labels", labels_file, "--method", "xmore-l1")
    assert bad.exit_code == 2 and "'xmore-l1' is not one of zeroshot" in " ".join(bad.stderr.split())
