"""The method's arithmetic against numbers worked out by hand."""

import math

import numpy as np
import pytest

from xmore_db import method

E = math.e
SIGMOID_1 = E / (E + 1)  # softmax((1, 0))[0] = 0.7310586


def test_class_probabilities_is_scaled_cosine_softmax():
    classes = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = method.class_probabilities(np.array([1.0, 0.0]), classes, logit_scale=1.0)
    assert np.allclose(p, [SIGMOID_1, 1 - SIGMOID_1])
    p100 = method.class_probabilities(np.array([[0.6, 0.8]]), classes, logit_scale=100.0)
    # logits 60 and 80: the second class wins by e^20
    assert np.allclose(p100, [[1 / (1 + E**20), E**20 / (1 + E**20)]])


def test_text_probabilities_average_per_caption_softmaxes():
    classes = np.array([[1.0, 0.0], [0.0, 1.0]])
    captions = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert np.allclose(method.text_probabilities(captions, classes, 1.0), [0.5, 0.5])
    one = method.text_probabilities(captions[:1], classes, 1.0)
    assert np.allclose(one, [SIGMOID_1, 1 - SIGMOID_1])


def test_no_caption_gives_no_text_modality():
    classes = np.eye(3)
    assert method.text_probabilities(np.zeros((0, 3)), classes, 100.0) is None


def test_confidence_one_minus_normalised_entropy():
    assert method.confidence(np.array([0.5, 0.5])) == pytest.approx(0.0)
    assert method.confidence(np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)
    # H(0.75, 0.25) = 0.5623351 nats; / ln 2 = 0.8112781
    assert method.confidence(np.array([0.75, 0.25])) == pytest.approx(0.1887219, abs=1e-7)
    batch = method.confidence(np.array([[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]]))
    assert np.allclose(batch, [0.0, 0.5])  # H = ln 2 over log 4


def test_confidence_needs_two_classes():
    with pytest.raises(ValueError):
        method.confidence(np.array([1.0]))


IMAGE_STREAM = [0.5, 0.2, 0.8, 0.5]
TEXT_STREAM = [0.3, None, 0.9, 0.6]  # the second query retrieved no caption


def test_minmax_stream_first_query_is_one():
    adjusted = method.running_adjust(IMAGE_STREAM, "minmax")
    assert np.allclose(adjusted, [1.0, 0.0, 1.0, 0.5])


def test_minmax_stream_skips_queries_without_captions():
    adjusted = method.running_adjust(TEXT_STREAM, "minmax")
    assert adjusted[0] == 1.0 and np.isnan(adjusted[1])
    assert np.allclose(adjusted[2:], [1.0, 0.5])


def test_l1_stream_divides_by_running_sum():
    assert np.allclose(method.running_adjust(IMAGE_STREAM, "l1"), [1.0, 0.2 / 0.7, 0.8 / 1.5, 0.25])
    text = method.running_adjust(TEXT_STREAM, "l1")
    assert np.isnan(text[1])
    assert np.allclose(text[[0, 2, 3]], [1.0, 0.75, 0.6 / 1.8])


def test_none_gives_equal_confidence():
    assert np.allclose(method.running_adjust(IMAGE_STREAM, "none"), 1.0)


def test_adjust_edge_cases():
    assert method.adjust_minmax(0.4, 0.4, 0.4) == 1.0
    assert method.adjust_l1(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="unknown normalisation"):
        method.adjust("softmax", 0.5, seen_min=0, seen_max=1, seen_sum=1)


def test_ensemble_weights_by_adjusted_confidence():
    p_i, p_t = np.array([0.6, 0.4]), np.array([0.2, 0.8])
    assert np.allclose(method.ensemble(p_i, p_t, 0.5, 1.0), [0.5 / 1.5, 1.0 / 1.5])
    assert np.allclose(method.ensemble(p_i, p_t, 0.0, 0.0), [0.4, 0.6])
    assert np.allclose(method.ensemble(p_i, p_t, 1.0, 0.0), p_i)
    assert np.allclose(method.ensemble(p_i, None, 0.3, 0.0), p_i)


def test_first_query_of_a_stream_averages_both_modalities():
    # First query: min == max for both modalities, so both ĉ = 1 under minmax.
    p_i, p_t = np.array([0.9, 0.1]), np.array([0.3, 0.7])
    w_i = method.adjust("minmax", 0.53, seen_min=0.53, seen_max=0.53, seen_sum=0.53)
    w_t = method.adjust("minmax", 0.12, seen_min=0.12, seen_max=0.12, seen_sum=0.12)
    assert np.allclose(method.ensemble(p_i, p_t, w_i, w_t), [0.6, 0.4])
    # Under l1 the first query is c/c = 1 too.
    assert method.adjust("l1", 0.53, seen_min=0.53, seen_max=0.53, seen_sum=0.53) == 1.0


def test_functions_do_not_modify_inputs():
    logits = np.array([[3.0, 1.0, 0.0]])
    kept = logits.copy()
    method.softmax(logits)
    method.confidence(method.softmax(logits))
    p_i = np.array([0.6, 0.4])
    out = method.ensemble(p_i, None, 1.0, 0.0)
    out[0] = 0.0
    assert np.array_equal(logits, kept) and p_i[0] == 0.6
