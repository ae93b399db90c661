"""APoT levels and quantizer, by hand."""

import numpy as np
import pytest
import tensorflow as tf

from tflw.quantization.apot import ApotWeights, apot_levels, apot_quantize


def test_levels_are_sums_of_powers_of_two():
    np.testing.assert_allclose(apot_levels(2), [0, 1])                 # ternary
    np.testing.assert_allclose(apot_levels(3), [0, 0.25, 0.5, 1])      # powers of two
    # 4 bits: {0, 1/2, 1/8, 1/32} + {0, 1/4}, divided by 3/4
    np.testing.assert_allclose(apot_levels(4), [0, 1 / 24, 1 / 6, 1 / 3, 3 / 8, 1 / 2, 2 / 3, 1],
                               rtol=1e-6)
    assert [len(apot_levels(bits)) for bits in range(2, 8)] == [2, 4, 8, 16, 32, 64]


def test_forward_and_clipping_gradient_by_hand():
    w = np.array([-3.0, -0.6, 0.2, 0.8, 1.0, 2.6], "float32")
    sigma = w.std()
    v = w / sigma          # sigma 1.714; normalized: [-1.75, -0.35, 0.12, 0.47, 0.58, 1.52]
    weights, alpha = tf.Variable(w), tf.Variable(1.0)
    with tf.GradientTape() as tape:
        q = apot_quantize(weights, alpha, bits=3, channel_axes=())
    # clip to [-1, 1], then the nearest of {0, 1/4, 1/2, 1} with its sign
    expected = sigma * np.array([-1.0, -0.25, 0.0, 0.5, 0.5, 1.0])
    assert np.all(np.abs(v[[1, 2, 3, 4]]) < 1) and np.all(np.abs(v[[0, 5]]) > 1)
    np.testing.assert_allclose(q.numpy(), expected, rtol=1e-5)
    # RCF: alpha gets sigma * sign(w) from the clipped weights only (-1 + 1 = 0 here)
    np.testing.assert_allclose(tape.gradient(q, alpha).numpy(), 0.0, atol=1e-5)
    with tf.GradientTape() as tape:
        q = apot_quantize(weights, alpha, bits=3, channel_axes=())
        loss = tf.reduce_sum(q * tf.constant([0, 0, 0, 0, 0, 1.0]))
    np.testing.assert_allclose(tape.gradient(loss, alpha).numpy(), sigma, rtol=1e-5)


def test_per_channel_weights_take_at_most_2_to_the_k_minus_1_values():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 8, 4)).astype("float32")
    scheme = ApotWeights(bits=4)
    alpha = scheme.initial_parameters(kernel, (3,))
    q = np.asarray(scheme(tf.constant(kernel), tf.constant(alpha), (3,)))
    assert max(len(np.unique(q[..., c])) for c in range(4)) <= 15
    assert ApotWeights.from_config(ApotWeights(4, ewgs_delta=0.2).get_config()).ewgs_delta == 0.2
    with pytest.raises(ValueError, match="2 to 7"):
        ApotWeights(8)


def test_the_starting_clipping_level_has_the_least_error_on_the_grid():
    kernel = np.random.default_rng(1).normal(size=(3, 3, 8, 4)).astype("float32")
    scheme = ApotWeights(bits=2)
    alpha = scheme.initial_parameters(kernel, (3,))

    def error(alphas):
        q = np.asarray(scheme(tf.constant(kernel), tf.constant(alphas, "float32"), (3,)))
        return ((q - kernel) ** 2).mean(axis=(0, 1, 2))

    assert np.all(alpha < 3.0)  # the paper's fixed start zeroes most 2-bit weights
    assert np.all(error(alpha) < error(np.full_like(alpha, 3.0)))
