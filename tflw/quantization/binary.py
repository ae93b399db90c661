"""Binary weights: sign with a per-channel scale, deployable as a 1-bit LUT.

```python
w_b = binary_quantize(w, channel_axes=(3,))   # mean|w| * sign(w), per output channel
BinaryWeights()(w, None, channel_axes=(3,))  # the same, as a layer's weight scheme
```

After int8 conversion each channel holds two values, +-127, so TFLite-Micro's LUT
compression stores the tensor at 1 bit per weight plus a two-entry table per channel.
"""

import keras
import numpy as np
from keras import ops

from tflw.quantization.weight_quantizer import WeightQuantizer


def binary_quantize(weights, channel_axes: tuple):
    """XNOR-Net binarization with a straight-through estimator.

    With alpha_c = mean_c |w| over the weights of output channel c:

        q(w) = alpha_c * sign(w),   sign(0) = +1

    Gradient: dq/dw = 1 if |w| <= 1 else 0 (the clipped straight-through estimator of
    Courbariaux et al. and Bi-Real Net); alpha_c is a statistic, not trained.

    Args:
        weights: float tensor.
        channel_axes: the axes that index an output channel (each gets its own alpha);
            () for one alpha over the tensor.

    Returns:
        The binarized weights, same shape as `weights`.

    References:
        M. Rastegari, V. Ordonez, J. Redmon, A. Farhadi, "XNOR-Net: ImageNet Classification
        Using Binary Convolutional Neural Networks", ECCV 2016.
        Z. Liu et al., "Bi-Real Net: Enhancing the Performance of 1-bit CNNs", ECCV 2018.
    """
    reduce = tuple(i for i in range(len(weights.shape)) if i not in channel_axes)
    alpha = ops.stop_gradient(ops.mean(ops.abs(weights), axis=reduce, keepdims=True))
    # sign(2 sign(w) + 1) is sign(w) with sign(0) = +1, in ops the converter folds for
    # any tensor size (a select on a large kernel is left unfolded and fails conversion).
    signs = ops.sign(2.0 * ops.sign(weights) + 1.0)
    straight_through = ops.clip(weights, -1.0, 1.0)  # gradient 1 inside, 0 outside
    return alpha * (straight_through + ops.stop_gradient(signs - straight_through))


@keras.saving.register_keras_serializable(package="tflw")
class BinaryWeights(WeightQuantizer):
    """`binary_quantize` as a layer's weight scheme (no learned parameters)."""

    bits = 1

    def __call__(self, kernel, parameters, channel_axes: tuple):
        return binary_quantize(kernel, channel_axes)

    def initial_parameters(self, kernel: np.ndarray, channel_axes: tuple) -> np.ndarray:
        raise TypeError("binary weights learn no parameters")

    def get_config(self) -> dict:
        return {}
