"""Binary weights, by hand."""

import numpy as np
import tensorflow as tf

from tflw.quantization.binary import binary_quantize


def test_binary_forward_and_gradients_by_hand():
    # two output channels (last axis): alpha = mean|w| per channel = 0.5 and 1.5
    w = tf.Variable([[0.2, -1.0], [-0.8, 2.0]])
    with tf.GradientTape() as tape:
        q = binary_quantize(w, channel_axes=(1,))
    np.testing.assert_allclose(q.numpy(), [[0.5, -1.5], [-0.5, 1.5]])
    # straight-through inside |w| <= 1 (times alpha), none outside
    np.testing.assert_allclose(tape.gradient(q, w).numpy(), [[0.5, 1.5], [0.5, 0.0]])
