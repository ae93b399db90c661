"""k-means weight clustering, by hand."""

import numpy as np
import tensorflow as tf

from tflw.quantization.kmeans import KmeansWeights, kmeans_centroids, kmeans_quantize


def test_centroids_are_each_channels_cluster_means():
    kernel = np.array([[0.0, -4.0], [0.1, -3.0], [0.9, 2.0], [1.0, 4.0]], "float32")  # 2 channels
    centroids = kmeans_centroids(kernel, count=2, channel_axes=(1,))
    np.testing.assert_allclose(centroids, [[0.05, 0.95], [-3.5, 3.0]], rtol=1e-6)


def test_forward_and_gradients_by_hand():
    weights = tf.Variable([0.0, 0.4, 0.7, 1.2])
    centroids = tf.Variable([0.1, 1.0])
    with tf.GradientTape() as tape:
        q = kmeans_quantize(weights, centroids)
        loss = tf.reduce_sum(q * tf.constant([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(q.numpy(), [0.1, 0.1, 1.0, 1.0])
    grad_w, grad_c = tape.gradient(loss, [weights, centroids])
    np.testing.assert_allclose(grad_w.numpy(), [1, 2, 3, 4])   # straight through
    np.testing.assert_allclose(grad_c.numpy(), [1 + 2, 3 + 4])  # summed per cluster


def test_depthwise_channels_get_their_own_centroids():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 2)).astype("float32")
    scheme = KmeansWeights(bits=2)
    centroids = scheme.initial_parameters(kernel, (2, 3))
    assert centroids.shape == (4, 2, 4)
    q = np.asarray(scheme(tf.constant(kernel), tf.constant(centroids), (2, 3)))
    assert all(len(np.unique(q[:, :, c, m])) <= 4 for c in range(4) for m in range(2))


def test_weighted_centroids_are_importance_weighted_means():
    kernel = np.array([[0.0], [0.2], [1.0], [1.2]], "float32")  # one channel
    importance = np.array([[3.0], [1.0], [1.0], [1.0]])
    centroids = kmeans_centroids(kernel, count=2, channel_axes=(1,), importance=importance)
    np.testing.assert_allclose(centroids, [[0.05, 1.1]], rtol=1e-6)  # (3*0 + 0.2) / 4
