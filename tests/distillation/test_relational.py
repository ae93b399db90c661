"""Attention transfer and similarity-preserving losses against hand-computed values."""

import keras
import numpy as np
import pytest

import tflw
from tflw.distillation import AttentionTransfer, SimilarityPreserving

from .test_distiller import LOSS, cnn, data


def test_attention_transfer_by_hand():
    # student (1, 1, 2, 2): squares' channel means 1 and 0 -> map (1, 0); teacher
    # (1, 1, 2, 3): means 3 and 3 -> (1/sqrt2, 1/sqrt2); loss = mean of the squared gaps
    student = np.array([[[[1.0, 1.0], [0.0, 0.0]]]])
    teacher = np.full((1, 1, 2, 3), 3.0)
    loss = AttentionTransfer("s", "t").compute_loss(teacher, student)
    expected = ((1 - 2 ** -0.5) ** 2 + (0 - 2 ** -0.5) ** 2) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    # scale-free, channel-count-free: the same map at any size is no loss
    assert float(AttentionTransfer("s", "t").compute_loss(teacher, 5 * teacher[..., :1])) == (
        pytest.approx(0.0, abs=1e-7))


def test_similarity_preserving_by_hand():
    # two samples; student rows (1, 0) and (0, 1): G = I; teacher both (1, 1): G = all 2s,
    # rows normalized to 1/sqrt2; loss = sum of squared gaps / N^2
    student = np.array([[1.0, 0.0], [0.0, 1.0]])
    teacher = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    loss = SimilarityPreserving("s", "t").compute_loss(teacher, student)
    gap = 2 * (1 - 2 ** -0.5) ** 2 + 2 * (2 ** -0.5) ** 2
    assert float(loss) == pytest.approx(gap / 4, rel=1e-6)


def test_attention_and_similarity_train_a_narrower_student_through_the_distiller():
    keras.utils.set_random_seed(0)
    teacher, student = cnn(8, "teacher"), cnn(4, "student")
    x, y = data(32)
    plain = tflw.Distiller(student, teacher, alpha=0.5)
    plain.compile("adam", LOSS)
    both = tflw.Distiller(student, teacher, alpha=0.5, attention={"features": "features"},
                          similarity={"features": "features"})
    both.compile("adam", LOSS)
    # the feature terms add to the same logits loss on the same batch
    assert both.evaluate(x, y, verbose=0) > plain.evaluate(x, y, verbose=0)
    before = both.evaluate(x, y, verbose=0)
    both.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert both.evaluate(x, y, verbose=0) < before
    with pytest.raises(ValueError, match="'features' -> 'logits'.*differ in more than"):
        tflw.Distiller(student, teacher, attention={"features": "logits"})
