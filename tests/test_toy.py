"""The proof domain: the generator, and the committed toy checkpoints."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from xmore_db.errors import WeightsMissingError
from xmore_db.models import BUILTIN_TAG, builtin_checkpoints, load_encoder, resolve_weights
from xmore_db.models.weights import CHECKPOINT_DIR
from xmore_db.toy import ATTRIBUTES, TASKS, Item, caption_for, draw, random_item, write_corpus, write_test_set


def test_drawing_is_a_function_of_the_seed():
    def image(seed, style):
        rng = random.Random(seed)
        return np.asarray(draw(random_item(rng, style), rng=rng))

    for style in ("render", "sketch"):
        assert np.array_equal(image(5, style), image(5, style))
        assert not np.array_equal(image(5, style), image(6, style))
        assert image(5, style).shape == (64, 64, 3)


def test_captions_are_noisy_but_mostly_name_the_item():
    rng = random.Random(0)
    items = [random_item(rng) for _ in range(400)]
    captions = [caption_for(item, rng) for item in items]
    named = np.mean([item.shape in c or item.colour in c for item, c in zip(items, captions, strict=True)])
    assert 0.6 < named < 0.98  # most name the shape or the colour; some are wrong, vague or junk
    assert len(set(captions)) > 200
    sketch = caption_for(Item("star", "red", "dotted", "large", "white", "sketch"), random.Random(1),
                         wrong_rate=0, junk_rate=0)
    assert "dot" not in sketch  # a sketch has no texture


def test_corpus_and_test_sets_on_disk(tmp_path):
    captions = write_corpus(tmp_path / "corpus", 12, seed=1)
    assert len(captions.read_text().splitlines()) == 13
    folder = write_test_set(tmp_path / "shape", "shape", 10, seed=2)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(ATTRIBUTES["shape"])
    assert len(list(folder.rglob("*.png"))) == 10
    split = write_test_set(tmp_path / "colour", TASKS["colour"], 12, seed=2, layout="coop")
    rows = json.loads(split.read_text())["test"]
    labels = (split.parent / "labels.txt").read_text().split()
    assert labels == list(ATTRIBUTES["colour"])
    assert all(labels[index] == name and (split.parent / "images" / rel).is_file() for rel, index, name in rows)


TOY_MODELS = ("xmore-toy-weak", "xmore-toy-medium", "xmore-toy-strong")


def test_committed_checkpoints_are_small_and_documented():
    assert set(builtin_checkpoints()) == set(TOY_MODELS)
    total = sum(p.stat().st_size for p in CHECKPOINT_DIR.glob("*.safetensors"))
    assert total < 12 * 2**20
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for arch in TOY_MODELS:
        meta = json.loads((CHECKPOINT_DIR / f"{arch}.json").read_text())
        assert meta["arch"] == arch and {"seed", "data_seed", "steps", "final_train_loss", "wall_seconds"} <= set(meta)
        # The README gives the exact command that made each checkpoint (same seeds, same steps).
        assert meta["command"].replace("python ", ".venv/bin/python ", 1) in readme, arch


@pytest.mark.parametrize(("arch", "dim"), [(arch, 64) for arch in TOY_MODELS])
def test_toy_checkpoints_load_offline_and_are_trained(arch, dim):
    encoder = load_encoder(f"{arch}:{BUILTIN_TAG}")
    assert encoder.dim == dim and encoder.fingerprint.startswith(f"{arch}:file:size=")
    # Trained, not random: colour is the easiest task, and a caption finds its prompt.
    rng = random.Random(7)
    colours = list(ATTRIBUTES["colour"])
    items = [Item(**{**random_item(rng).__dict__, "colour": colours[i % 6], "texture": "solid"}) for i in range(30)]
    images = encoder.encode_images([draw(item, rng=rng) for item in items])
    prompts = encoder.encode_texts([f"a photo of a {c}." for c in colours])
    accuracy = np.mean((images @ prompts.T).argmax(1) == np.arange(30) % 6)
    assert accuracy > 0.7
    texts = encoder.encode_texts(["a red striped star on white", "blue dotted circle clipart"])
    assert list((texts @ prompts.T).argmax(1)) == [colours.index("red"), colours.index("blue")]


def test_missing_builtin_checkpoint_names_the_script():
    with pytest.raises(WeightsMissingError) as e:
        resolve_weights("xmore-tiny:toy", role="fine")
    assert "scripts/train_toy_clip.py --arch xmore-tiny" in str(e.value)
