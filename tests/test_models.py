"""Encoders, weights loading, prompt cache and image loading, on the tiny architectures.

Nothing here needs network or downloaded weights: the tiny architectures are
randomly initialised (seeded), and "pretrained" files are written by the tests.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xmore_db.config import ModelSpec
from xmore_db.errors import ConfigError, ImageError, UnknownModelError, WeightsMissingError
from xmore_db.images import load_image
from xmore_db.models import (
    class_embeddings,
    clear_cache,
    embed_dim,
    load_encoder,
    prompt_cache_key,
    resolve_weights,
    tiny_architectures,
)
from xmore_db.models.prompts import clear_memo

ROOT = Path(__file__).resolve().parents[1]


def _images(n: int, size: int = 48) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [Image.fromarray(rng.integers(0, 256, (size, size + i % 5, 3), dtype=np.uint8))
            for i in range(n)]


def _run_python(code: str, timeout: float = 60) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert message and "\n" not in message
    return message


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("xmore-tiny")


@pytest.fixture(scope="module")
def tiny_model_files(tmp_path_factory):
    """A tiny model with other weights than the seeded ones, saved three ways."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from xmore_db.models import ensure_registered

    ensure_registered()
    torch.manual_seed(123)
    model, _, preprocess = open_clip.create_model_and_transforms("xmore-tiny")
    model.eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    folder = tmp_path_factory.mktemp("weights")
    files = {
        "safetensors": folder / "tiny.safetensors",
        "pt": folder / "tiny.pt",
        "wrapped": folder / "tiny-wrapped.bin",
    }
    save_file(state, str(files["safetensors"]))
    torch.save(state, files["pt"])
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}},
               files["wrapped"])
    with torch.inference_mode():
        pixels = torch.stack([preprocess(im) for im in _images(3)])
        expected = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1).numpy()
    return files, expected


# --- tiny architectures ------------------------------------------------------------------


def test_tiny_architectures_encode_unit_rows(tiny):
    assert {"xmore-tiny", "xmore-tiny-wide"} <= set(tiny_architectures())
    wide = load_encoder(ModelSpec("xmore-tiny-wide"))
    assert (tiny.dim, wide.dim) == (32, 48) == (embed_dim("xmore-tiny"), embed_dim("xmore-tiny-wide"))
    assert tiny.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)  # open_clip's initial temperature
    assert tiny.fingerprint == "xmore-tiny:random-init(seed=0)"

    odd = [Image.new("L", (40, 20), 128), Image.new("RGBA", (20, 40), (1, 2, 3, 4))]
    for encoder in (tiny, wide):
        images = encoder.encode_images(_images(5) + odd)
        texts = encoder.encode_texts(["a photo of a cat.", "a dog", "x " * 200])  # last truncated
        for out, n in ((images, 7), (texts, 3)):
            assert out.shape == (n, encoder.dim) and out.dtype == np.float32
            assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
        assert encoder.encode_images([]).shape == (0, encoder.dim)
        assert encoder.encode_texts([]).shape == (0, encoder.dim)


def test_batches_do_not_change_results_and_encoding_is_fast(tiny):
    images = _images(64, size=64)
    small = load_encoder("xmore-tiny", batch_size=5)
    assert small is not tiny and small.batch_size == 5
    seconds = []
    for _ in range(2):  # best of two: a busy machine should not fail the test
        start = time.perf_counter()
        out = tiny.encode_images(images)
        seconds.append(time.perf_counter() - start)
    assert min(seconds) < 1.0
    assert np.allclose(small.encode_images(images), out, atol=1e-5)
    assert np.allclose(small.encode_texts(["a", "b", "c"] * 4), tiny.encode_texts(["a", "b", "c"] * 4),
                       atol=1e-5)


def test_encoders_are_memoised_and_leave_the_global_rng_alone(tiny):
    import torch

    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    clear_cache()
    again = load_encoder("xmore-tiny")
    assert torch.equal(torch.rand(3), before)
    assert again is load_encoder(ModelSpec.parse("xmore-tiny"))
    assert np.array_equal(again.encode_texts(["a cat"]), tiny.encode_texts(["a cat"]))


def test_single_string_or_image_is_refused(tiny):
    with pytest.raises(TypeError):
        tiny.encode_texts("a cat")
    with pytest.raises(TypeError):
        tiny.encode_images(Image.new("RGB", (8, 8)))


def test_random_init_is_identical_in_separate_processes():
    """A fresh process and this one (its global RNG in another state) build the same weights."""
    import torch

    code = """
        import json, numpy as np
        from PIL import Image
        from xmore_db.models import load_encoder
        enc = load_encoder("xmore-tiny-wide")
        image = Image.fromarray(np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3))
        print(json.dumps({"text": enc.encode_texts(["a photo of a cat."]).tolist(),
                          "image": enc.encode_images([image]).tolist()}))
    """
    proc = _run_python(code)
    clear_cache()
    torch.manual_seed(999)
    torch.rand(100)
    here = load_encoder("xmore-tiny-wide")
    image = Image.fromarray(np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3))
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    there = json.loads(out.strip().splitlines()[-1])
    assert np.allclose(there["text"], here.encode_texts(["a photo of a cat."]), atol=1e-6)
    assert np.allclose(there["image"], here.encode_images([image]), atol=1e-6)


# --- weights from files ------------------------------------------------------------------


def test_local_checkpoints_load_the_same_weights(tiny, tiny_model_files, tmp_path):
    files, expected = tiny_model_files
    results = {}
    for kind, path in files.items():
        encoder = load_encoder(f"xmore-tiny:{path}")
        assert encoder.fingerprint.startswith("xmore-tiny:file:size=")
        results[kind] = encoder.encode_images(_images(3))
        assert np.allclose(results[kind], expected, atol=1e-5)
    assert np.array_equal(results["safetensors"], results["pt"])
    assert np.array_equal(results["pt"], results["wrapped"])
    assert not np.allclose(results["pt"], tiny.encode_images(_images(3)), atol=1e-3)

    # The fingerprint is the content: a copy elsewhere has the same one, another file another.
    copy = tmp_path / "moved.safetensors"
    copy.write_bytes(files["safetensors"].read_bytes())
    same = resolve_weights(f"xmore-tiny:{copy}").fingerprint
    assert same == resolve_weights(f"xmore-tiny:{files['safetensors']}").fingerprint
    assert same != resolve_weights(f"xmore-tiny:{files['pt']}").fingerprint


def test_weights_that_do_not_fit_the_architecture(tiny_model_files):
    files, _ = tiny_model_files
    with pytest.raises(ConfigError) as e:
        load_encoder(f"xmore-tiny-wide:{files['pt']}")
    assert "do not fit architecture xmore-tiny-wide" in _one_line(e)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_that_runs_code_is_refused(tmp_path, writer):
    import torch

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    payload = {"state_dict": {"visual.proj": _Exploit(marker)}}
    if writer == "pickle":
        evil.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, evil)
    with pytest.raises(ConfigError) as e:
        load_encoder(f"xmore-tiny:{evil}")
    message = _one_line(e)
    assert str(evil) in message and "refused" in message
    assert not marker.exists()


def test_files_that_are_not_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 not safetensors")
    with pytest.raises(ConfigError) as e:
        load_encoder(f"xmore-tiny:{garbage}")
    assert "not a valid safetensors file" in _one_line(e)

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError) as e:
        load_encoder(f"xmore-tiny:{empty}")
    _one_line(e)

    folder = tmp_path / "dir.pt"
    folder.mkdir()
    with pytest.raises(ConfigError) as e:
        load_encoder(f"xmore-tiny:{folder}")
    assert "is not a file" in _one_line(e)


# --- names and the cache -----------------------------------------------------------------


def test_unknown_architecture_lists_close_names():
    with pytest.raises(UnknownModelError) as e:
        load_encoder("ViT-B-33:openai")
    assert "ViT-B-32" in _one_line(e)
    with pytest.raises(UnknownModelError) as e:
        embed_dim("xmore-tiny-wid")
    assert "xmore-tiny-wide" in _one_line(e)


def test_unknown_tag_lists_the_valid_ones():
    with pytest.raises(UnknownModelError) as e:
        load_encoder("ViT-B-32:opnai")
    message = _one_line(e)
    assert "did you mean openai?" in message and "laion2b_s34b_b79k" in message
    with pytest.raises(UnknownModelError) as e:
        load_encoder("xmore-tiny:openai")
    assert "no pretrained tags" in _one_line(e)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope" / "weights.safetensors"
    with pytest.raises(WeightsMissingError) as e:
        load_encoder(f"ViT-B-32:{missing}", role="coarse")
    assert str(missing) in _one_line(e) and "coarse model" in str(e.value)


def test_uncached_tag_fails_fast_with_the_fix(tmp_path):
    load_encoder("xmore-tiny")  # open_clip imported: time only the lookup
    start = time.perf_counter()
    with pytest.raises(WeightsMissingError) as e:
        load_encoder("ViT-L-14:openai", cache_dir=tmp_path, role="fine")
    assert time.perf_counter() - start < 2.0
    message = _one_line(e)
    assert message.startswith("weights for ViT-L-14:openai (fine model) are not in the local cache")
    assert "XMORE_FINE_MODEL" in message
    assert "ViT-L-14-quickgelu:/path/to/" in message  # OpenAI's weights were trained with QuickGELU
    with pytest.raises(WeightsMissingError) as e:
        load_encoder("RN50:openai", cache_dir=tmp_path, role="classifier")
    assert "XMORE_CLASSIFIER_MODEL" in _one_line(e)


def test_cached_tag_loads_from_the_hf_cache(tiny_model_files, tmp_path, monkeypatch):
    import open_clip.pretrained

    from xmore_db.models import ensure_registered

    ensure_registered()  # the live open_clip registry answers from now on
    files, expected = tiny_model_files
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "xmore-tiny",
                        {"testtag": {"hf_hub": "xmore/tiny-test/", "quick_gelu": False}})
    snapshot = tmp_path / "models--xmore--tiny-test" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(files["safetensors"].read_bytes())
    (tmp_path / "models--xmore--tiny-test" / "refs").mkdir()
    (tmp_path / "models--xmore--tiny-test" / "refs" / "main").write_text("a" * 40)

    encoder = load_encoder("xmore-tiny:testtag", cache_dir=tmp_path)
    assert encoder.fingerprint == "xmore-tiny:testtag"
    assert np.allclose(encoder.encode_images(_images(3)), expected, atol=1e-5)
    with pytest.raises(WeightsMissingError):
        load_encoder("xmore-tiny:testtag", cache_dir=tmp_path / "empty", role="coarse")


def test_bad_role_batch_size_and_device():
    import torch

    with pytest.raises(ConfigError):
        load_encoder("xmore-tiny", role="other")
    with pytest.raises(ConfigError):
        load_encoder("xmore-tiny", batch_size=0)
    with pytest.raises(ConfigError) as e:
        load_encoder("xmore-tiny", device="gpu-please")
    assert "unknown device" in _one_line(e)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError) as e:
            load_encoder("xmore-tiny", device="cuda")
        assert "not available" in _one_line(e)


# --- class prompts -----------------------------------------------------------------------


@pytest.fixture
def counted(tiny, monkeypatch):
    """The tiny encoder with encode_texts counting its calls; prompt memo cleared."""
    calls = []
    original = tiny.encode_texts

    def encode_texts(texts):
        calls.append(list(texts))
        return original(texts)

    monkeypatch.setattr(tiny, "encode_texts", encode_texts)
    clear_memo()
    yield tiny, calls
    clear_memo()


def test_class_embeddings_are_computed_once(counted, tmp_path):
    encoder, calls = counted
    labels = ["cat", "dog", "sunflower"]
    first = class_embeddings(encoder, labels, "a photo of a {label}.", tmp_path)
    assert calls == [["a photo of a cat.", "a photo of a dog.", "a photo of a sunflower."]]
    assert first.shape == (3, encoder.dim) and first.dtype == np.float32
    assert np.allclose(first, encoder.encode_texts(calls[0]))
    calls.clear()
    assert not first.flags.writeable  # shared by every caller

    assert class_embeddings(encoder, labels, "a photo of a {label}.", tmp_path) is first
    key = prompt_cache_key(encoder.fingerprint, labels, "a photo of a {label}.")
    cached = tmp_path / "prompts" / f"{key}.npy"
    assert cached.is_file() and [p.name for p in cached.parent.iterdir()] == [cached.name]

    clear_memo()  # a new process: the disk cache answers
    again = class_embeddings(encoder, labels, "a photo of a {label}.", tmp_path)
    assert calls == [] and np.array_equal(again, first)

    other = class_embeddings(encoder, labels, "itap of a {label}.", tmp_path)
    assert len(calls) == 1 and not np.allclose(other, first)
    assert prompt_cache_key(encoder.fingerprint, labels, "itap of a {label}.") != key
    assert prompt_cache_key(encoder.fingerprint, labels[::-1], "a photo of a {label}.") != key
    assert prompt_cache_key("xmore-tiny-wide:random-init(seed=0)", labels,
                            "a photo of a {label}.") != key


def test_class_embeddings_recompute_a_bad_cache_file(counted, tmp_path):
    encoder, calls = counted
    key = prompt_cache_key(encoder.fingerprint, ["cat"], "{label}")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / f"{key}.npy").write_bytes(b"not numpy")
    out = class_embeddings(encoder, ["cat"], "{label}", tmp_path)
    assert len(calls) == 1 and out.shape == (1, encoder.dim)
    clear_memo()
    assert np.array_equal(class_embeddings(encoder, ["cat"], "{label}", tmp_path), out)
    assert len(calls) == 1


def test_class_embeddings_without_disk_cache_and_bad_templates(counted, tmp_path):
    encoder, calls = counted
    class_embeddings(encoder, ["cat"], "a {label}", None)
    class_embeddings(encoder, ["cat"], "a {label}", None)
    assert len(calls) == 1
    with pytest.raises(ConfigError):
        class_embeddings(encoder, ["cat"], "a photo", None)
    with pytest.raises(ConfigError):
        class_embeddings(encoder, ["cat"], "a {label} {other}", None)


# --- images ------------------------------------------------------------------------------


def test_load_image_decodes_to_rgb(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("LA", (7, 5), (10, 200)).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (7, 5)


@pytest.mark.parametrize("case", ["garbage", "truncated", "missing", "directory"])
def test_load_image_errors(tmp_path, case):
    path = tmp_path / "x.jpg"
    if case == "garbage":
        path.write_bytes(b"this is not a jpeg at all" * 10)
    elif case == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
                        ).save(path, quality=95)
        path.write_bytes(path.read_bytes()[:600])
    elif case == "directory":
        path.mkdir()
    with pytest.raises(ImageError) as e:
        load_image(path)
    assert _one_line(e).startswith(f"cannot read image {path}: ")
