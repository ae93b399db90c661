"""LSQ's quantizer, by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tflw.quantization.lsq import LsqWeights, lsq_quantize


def test_lsq_forward_and_gradients_by_hand():
    # 3 bits: Q = 3, step 0.2; v = w / s = [-5, -1.3, 0.55, 1.2, 4.5]
    w = tf.Variable([-1.0, -0.26, 0.11, 0.24, 0.9])
    s = tf.Variable(0.2)
    with tf.GradientTape() as tape:
        q = lsq_quantize(w, s, bits=3)
    np.testing.assert_allclose(q.numpy(), [-0.6, -0.2, 0.2, 0.2, 0.6], atol=1e-6)
    grad_w, grad_s = tape.gradient(q, [w, s])
    np.testing.assert_allclose(grad_w.numpy(), [0, 1, 1, 1, 0])  # clipped ones get none
    # outside: sign(v) Q = -3, +3; inside: round(v) - v = 0.3, 0.45, -0.2; g = 1/sqrt(5 * 3)
    expected = (-3 + 0.3 + 0.45 - 0.2 + 3) / math.sqrt(15)
    assert grad_s.numpy() == pytest.approx(expected, abs=1e-5)


def test_lsq_weights_serialize_and_refuse_eight_bits():
    assert LsqWeights.from_config(LsqWeights(4).get_config()).bits == 4
    with pytest.raises(ValueError, match="2 to 7"):
        LsqWeights(8)
