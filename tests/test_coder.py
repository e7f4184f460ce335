"""CODER's scoring (xmore_db.methods.coder) against hand-computed numbers: 3 classes, 2-d embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from xmore_db.coder.bank import ClassTexts, TextBank
from xmore_db.methods import get_method, registry
from xmore_db.methods.base import CAPTIONS, TEXTBANK, MethodInputs
from xmore_db.methods.coder import EncodedBank, class_scores, coder_scores, ovo_rerank

S = 10.0  # the logit scale: scores are S × mean similarity
IMAGE = np.array([[1.0, 0.0]])

# Class A: name (1,0) sim 1, synonym (0,1) sim 0, attribute (.6,.8) sim .6, analogy (.8,.6) sim .8
#   -> mean(.6, .8, max(1, 0)) = .8
# Class B: name (.6,.8) sim .6, nothing else -> .6
# Class C: name (0,1) sim 0, synonym (.8,.6) sim .8, attribute (-.6,.8) sim -.6 -> mean(-.6, max(0, .8)) = .1
TEXTS = np.array([[1, 0], [0, 1], [.6, .8], [.8, .6], [.6, .8], [0, 1], [.8, .6], [-.6, .8]])
TEXT_CLASS = np.array([0, 0, 0, 0, 1, 2, 2, 2])
IS_NAME = np.array([True, True, False, False, True, True, True, False])
SCORES = S * np.array([[.8, .6, .1]])

# One-vs-one texts, as (a, b, embedding): sims to IMAGE are the first coordinate.
OVO = [(1, 0, [1, 0]), (0, 1, [0, 1]), (1, 2, [.6, .8]), (2, 1, [.8, .6]),
       (0, 2, [1, 0])]  # (A, C) without (C, A): the pair counts 0 (the authors' code)


def bank(threshold: float = 0.1, ovo=OVO) -> EncodedBank:
    return EncodedBank(classes=("A", "B", "C"), texts=TEXTS, text_class=TEXT_CLASS, is_name=IS_NAME,
                       ovo_texts=np.array([v for _, _, v in ovo], dtype=float).reshape(-1, 2),
                       ovo_pair=np.array([(a, b) for a, b, _ in ovo], dtype=int).reshape(-1, 2), threshold=threshold)


def softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def inputs(threshold: float = 0.1, captions=None) -> MethodInputs:
    return MethodInputs(image_embeddings=IMAGE, prompts=np.zeros((3, 2)), logit_scale=S, captions=captions,
                        textbank=bank(threshold))


def test_class_scores_by_hand():
    sims = IMAGE @ TEXTS.T
    assert np.allclose(class_scores(sims, TEXT_CLASS, IS_NAME, 3, S), SCORES)
    assert np.allclose(coder_scores(IMAGE, bank(), S), SCORES)
    # Several queries at once, one per row; the inputs are not modified.
    two = np.array([[1.0, 0.0], [0.0, 1.0]])
    before = two.copy()
    # Second query (0,1): A mean(.8, .6, max(0, 1)) = .8; B .8; C mean(.8, max(1, .6)) = .9
    assert np.allclose(coder_scores(two, bank(), S), S * np.array([[.8, .6, .1], [.8, .8, .9]]))
    assert np.array_equal(two, before)


def test_a_class_without_a_name_text_is_refused():
    with pytest.raises(ValueError, match="name text"):
        class_scores(np.zeros((1, 2)), np.array([0, 1]), np.array([True, False]), 2, S)


def test_coder_predicts_the_softmax_of_the_scores():
    p = get_method("coder").modalities(inputs(), 16)
    assert p.p_text is None
    assert np.allclose(p.p_image, softmax(SCORES))


def test_coder_star_reranks_the_top_classes_by_the_one_vs_one_texts():
    p = softmax(SCORES)[0]  # [.8801, .1191, .0008]: gap .761
    # r_A = mean(m(A,B) - m(B,A) = 0 - 1, (A,C): no (C,A) text -> 0) = -.5
    # r_B = mean(m(B,A) - m(A,B) = 1, m(B,C) - m(C,B) = .6 - .8) = .4
    # r_C = mean((C,A) -> 0, m(C,B) - m(B,C) = .2) = .1   => order B, C, A
    reranked = ovo_rerank(IMAGE, SCORES, bank().ovo_texts, bank().ovo_pair, threshold=0.8)
    assert np.allclose(reranked[0], [p[2], p[0], p[1]])
    assert np.argmax(reranked[0]) == 1
    # Above the threshold nothing moves: gap .761 is not below .5.
    assert np.allclose(ovo_rerank(IMAGE, SCORES, bank().ovo_texts, bank().ovo_pair, threshold=0.5), p[None])
    # Through the method, the threshold comes with the bank.
    assert np.allclose(get_method("coder-star").modalities(inputs(threshold=0.8), 16).p_image, reranked)
    assert np.allclose(get_method("coder-star").modalities(inputs(threshold=0.5), 16).p_image, p[None])


def test_coder_star_keeps_the_score_order_on_ties_and_without_ovo_texts():
    symmetric = [(0, 1, [1, 0]), (1, 0, [1, 0])]  # every r is 0
    b = bank(ovo=symmetric)
    assert np.allclose(ovo_rerank(IMAGE, SCORES, b.ovo_texts, b.ovo_pair, threshold=1.0), softmax(SCORES))
    empty = bank(ovo=[])
    assert np.allclose(ovo_rerank(IMAGE, SCORES, empty.ovo_texts, empty.ovo_pair, threshold=1.0), softmax(SCORES))


def test_coder_captions_scores_each_caption_against_the_class_texts():
    # Caption 1 = (0,1): scores S·[.8, .8, .9]; caption 2 missing (NaN padding).
    captions = np.array([[[0.0, 1.0], [np.nan, np.nan]]])
    result = get_method("coder+captions").modalities(inputs(captions=captions), 2)
    assert np.allclose(result.p_image, softmax(SCORES))
    assert np.allclose(result.p_text, softmax(S * np.array([[.8, .8, .9]])))
    # Two captions: the mean of their CODER distributions.
    both = np.array([[[0.0, 1.0], [1.0, 0.0]]])
    mean = (softmax(S * np.array([.8, .8, .9])) + softmax(SCORES[0])) / 2
    assert np.allclose(get_method("coder+captions").modalities(inputs(captions=both), 2).p_text, mean[None])
    assert np.allclose(get_method("coder+captions").modalities(inputs(captions=both), 1).p_text,
                       softmax(S * np.array([[.8, .8, .9]])))
    # No caption at all: p_T is a NaN row (the ensemble then uses the image alone).
    none = np.full((1, 2, 2), np.nan)
    assert np.isnan(get_method("coder+captions").modalities(inputs(captions=none), 2).p_text).all()


def test_the_coder_methods_are_registered():
    known = registry()
    assert [n for n in known if n.startswith("coder")] == ["coder", "coder-star", "coder+captions"]
    assert known["coder"].needs == {TEXTBANK} and known["coder"].normalize is None
    assert known["coder-star"].needs == {TEXTBANK} and not known["coder-star"].uses_k
    assert known["coder+captions"].needs == {TEXTBANK, CAPTIONS}
    assert known["coder+captions"].normalize == "minmax" and known["coder+captions"].uses_k
    with pytest.raises(ValueError, match="textbank"):
        get_method("coder").modalities(MethodInputs(image_embeddings=IMAGE, prompts=np.zeros((3, 2)),
                                                     logit_scale=S), 1)


def test_a_bank_layout_gives_the_class_texts_in_order_with_the_default_templates():
    b = TextBank(classes={"cat": ClassTexts(synonyms=("kitty",), attributes=("whiskers",), analogies=("lynx",)),
                          "dog": ClassTexts()}, ovo={"cat": {"dog": ("whiskers",)}})
    layout = b.layout()
    assert layout.texts == ("a photo of cat", "a photo of kitty", "cat which has whiskers", "a cat similar to lynx.",
                            "a photo of dog")
    assert layout.text_class == (0, 0, 0, 0, 1) and layout.is_name == (True, True, False, False, True)
    assert layout.ovo_texts[0] == "Because of whiskers, cat is different from dog."
    assert len(layout.ovo_texts) == 7 and set(layout.ovo_pair) == {(0, 1)}
