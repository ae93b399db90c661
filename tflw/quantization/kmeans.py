"""k-means weight clustering: each channel's weights share 2^k learned centroids.

```python
centroids = kmeans_centroids(kernel, count=16, channel_axes=(3,))   # numpy, at start
w_q = kmeans_quantize(w, centroids)                                  # in training
```

The scalar, per-channel form of codebook quantization: on TFLite-Micro each channel holds
at most 2^k int8 values, which `export` LUT-compresses to k-bit indices, the same
deployment as tfmot's clustering but on tflw's folded, int8-exact layers.
"""

from typing import Optional

import keras
import numpy as np
from keras import ops

from tflw.quantization.weight_quantizer import WeightQuantizer

_ITERATIONS = 30


def kmeans_quantize(weights, centroids):
    """Each weight replaced by the nearest centroid of its channel.

    With c(w) the nearest of its channel's centroids:

        q(w) = c(w)

    Gradients: dq/dw = 1 (straight-through, so the weights, and with them the
    assignments, keep moving), and each centroid gets the sum of the gradients of the
    weights assigned to it (as in tfmot's clustering).

    Args:
        weights: float tensor whose trailing axes index its channels.
        centroids: (channels..., count), broadcastable to `weights` plus one axis.

    References:
        S. Han, H. Mao, W. J. Dally, "Deep Compression", ICLR 2016.
        P. Stock et al., "And the Bit Goes Down: Revisiting the Quantization of Neural
        Networks" (Kill-the-bits), ICLR 2020 (its codebooks, here scalar and per channel).
    """
    distance = ops.abs(weights[..., None] - centroids)
    chosen = ops.one_hot(ops.argmin(distance, axis=-1), centroids.shape[-1])
    nearest = ops.sum(chosen * centroids, axis=-1)
    # exactly the centroid in the forward pass (x - stop_gradient(x) is 0), gradients to both
    return (ops.stop_gradient(nearest) + (weights - ops.stop_gradient(weights))
            + (nearest - ops.stop_gradient(nearest)))


def kmeans_centroids(kernel: np.ndarray, count: int, channel_axes: tuple,
                     importance: Optional[np.ndarray] = None) -> np.ndarray:
    """Lloyd's k-means of each channel's weights, from `count` evenly spaced centroids
    (tfmot's linear initialization) between the channel's min and max.

    With `importance` (same shape as `kernel`, >= 0), each centroid is the
    importance-weighted mean of its weights: the minimum of sum_i h_i (w_i - c(w_i))^2,
    which `layerwise_kmeans` uses for the layer-output objective.
    """
    channels = [kernel.shape[a] for a in channel_axes]
    columns = kernel.reshape(-1, int(np.prod(channels))).T        # (channels, weights)
    weights = (np.ones_like(columns) if importance is None
               else np.broadcast_to(importance, kernel.shape).reshape(columns.T.shape).T)
    low, high = columns.min(axis=1), columns.max(axis=1)
    centroids = low[:, None] + (high - low)[:, None] * np.linspace(0, 1, count)[None, :]
    for _ in range(_ITERATIONS):
        # the nearest centroid is the best one whatever a weight's importance
        nearest = np.abs(columns[:, :, None] - centroids[:, None, :]).argmin(axis=-1)
        for k in range(count):
            members = np.where(nearest == k, weights, 0.0)
            sizes = members.sum(axis=1)
            means = (members * columns).sum(axis=1) / np.where(sizes > 0, sizes, 1.0)
            centroids[:, k] = np.where(sizes > 0, means, centroids[:, k])
    return centroids.reshape(*channels, count).astype("float32")


@keras.saving.register_keras_serializable(package="tflw")
class KmeansWeights(WeightQuantizer):
    """`kmeans_quantize` with 2^bits learned centroids per channel.

    Args:
        bits: 1 to 7 (2 to 128 centroids).
    """

    def __init__(self, bits: int):
        if not 1 <= bits <= 7:
            raise ValueError(f"k-means weights take 1 to 7 bits, got {bits}")
        self.bits = bits
        self.parameter_count = 2 ** bits

    def __call__(self, kernel, parameters, channel_axes: tuple):
        return kmeans_quantize(kernel, parameters)

    def initial_parameters(self, kernel: np.ndarray, channel_axes: tuple) -> np.ndarray:
        return kmeans_centroids(kernel, self.parameter_count, channel_axes)

    def get_config(self) -> dict:
        return {"bits": self.bits}
