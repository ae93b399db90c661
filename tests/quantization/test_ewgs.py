"""EWGS's scaled straight-through gradient, by hand."""

import numpy as np
import pytest
import tensorflow as tf

from tflw.conversion_trace import for_conversion
from tflw.quantization.ewgs import MAX_DELTA, discretize


def gradient(values, levels, spacing, delta, upstream):
    x = tf.Variable(values)
    with tf.GradientTape() as tape:
        y = discretize(x, tf.constant(levels), spacing, delta)
        loss = tf.reduce_sum(y * tf.constant(upstream))
    return y.numpy(), tape.gradient(loss, x).numpy()


def test_gradient_is_scaled_by_the_rounding_error_towards_the_loss():
    # e = [0.3, -0.2, 0.4]; g (1 + delta sign(g) e) with delta = 0.5
    y, grad = gradient([0.3, -0.2, 1.4], [0.0, 0.0, 1.0], 1.0, 0.5, [1.0, -2.0, 3.0])
    np.testing.assert_allclose(y, [0.0, 0.0, 1.0])
    np.testing.assert_allclose(grad, [1.15, -2.2, 3.6], rtol=1e-6)


def test_error_is_measured_in_units_of_the_local_spacing():
    # the same 0.01 error is a quarter step where levels are 0.04 apart
    _, grad = gradient([0.01], [0.0], 0.04, 1.0, [1.0])
    np.testing.assert_allclose(grad, [1.25], rtol=1e-6)


def test_zero_delta_is_the_straight_through_estimator_and_conversion_sees_no_custom_gradient():
    _, grad = gradient([0.3, -0.2], [0.0, 0.0], 1.0, 0.0, [1.0, -2.0])
    np.testing.assert_allclose(grad, [1.0, -2.0])
    with for_conversion():
        _, grad = gradient([0.3], [0.0], 1.0, 0.5, [1.0])
    np.testing.assert_allclose(grad, [1.0])


def test_delta_is_bounded():
    with pytest.raises(ValueError, match="EWGS delta"):
        discretize(tf.constant([0.1]), tf.constant([0.0]), 1.0, MAX_DELTA + 0.5)
