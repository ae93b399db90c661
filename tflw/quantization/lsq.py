"""LSQ: k-bit weights with a learned step size, deployable as int8 + k-bit LUT.

```python
w_q = lsq_quantize(w, step, bits=4)          # at most 2^4 - 1 levels per step
LsqWeights(bits=4)(w, step[..., None], (3,))  # the same, as a layer's weight scheme
```

The quantized weights are integer multiples of `step` in [-(2^(k-1) - 1), 2^(k-1) - 1]:
after int8 conversion each channel holds at most 2^k - 1 distinct int8 values, so
TFLite-Micro's LUT compression stores it at k bits per weight.
"""

import math

import keras
import numpy as np
from keras import ops

from tflw.quantization.ewgs import discretize
from tflw.quantization.weight_quantizer import KBitWeights


def _scale_gradient(x, factor: float):
    """x in the forward pass; its gradient multiplied by `factor`."""
    return x * factor + ops.stop_gradient(x - x * factor)


def lsq_quantize(weights, step, bits: int, ewgs_delta: float = 0.0):
    """Symmetric k-bit quantization with a learned step s (Esser et al. 2020).

    With Q = 2^(k-1) - 1 and v = w / s:

        q(w) = s * round(clip(v, -Q, Q))

    Gradients (straight-through for the rounding, or EWGS's scaled one with
    `ewgs_delta` > 0, see `tflw.quantization.ewgs.discretize`):

        dq/dw = 1 if |v| <= Q else 0
        dq/ds = g * (round(v) - v)   if |v| <= Q
                g * sign(v) * Q      otherwise

    with g = 1 / sqrt(N * Q), N the number of weights sharing one step (LSQ's gradient
    scale, which keeps the step's updates on the weights' scale).

    Args:
        weights: float tensor.
        step: positive step size, broadcastable to `weights` (one per output channel,
            or a scalar).
        bits: k, from 2 to 7.
        ewgs_delta: EWGS's gradient scaling factor; 0 is the straight-through estimator.

    Returns:
        The quantized weights, same shape as `weights`.

    References:
        S. K. Esser, J. L. McKinstry, D. Bablani, R. Appuswamy, D. S. Modha, "Learned
        Step Size Quantization", ICLR 2020.
    """
    levels = 2.0 ** (bits - 1) - 1.0
    shared = math.prod(weights.shape) / max(1, math.prod(step.shape))
    step = _scale_gradient(step, 1.0 / math.sqrt(shared * levels))
    clipped = ops.clip(weights / step, -levels, levels)
    return discretize(clipped, ops.round(clipped), 1.0, ewgs_delta) * step


def lsq_initial_step(weights, bits: int, axis=None):
    """LSQ's initial step, 2 mean|w| / sqrt(Q), per channel over all axes but `axis`."""
    levels = 2.0 ** (bits - 1) - 1.0
    axes = None if axis is None else tuple(i for i in range(len(weights.shape)) if i not in axis)
    return 2.0 * ops.mean(ops.abs(weights), axis=axes) / math.sqrt(levels)


@keras.saving.register_keras_serializable(package="tflw")
class LsqWeights(KBitWeights):
    """`lsq_quantize` at a fixed bit width: one learned step per channel.

    Args:
        bits: 2 to 7.
        ewgs_delta: EWGS's gradient scaling (0: straight-through), see `lsq_quantize`.
    """

    method = "LSQ"

    def __call__(self, kernel, parameters, channel_axes: tuple):
        return lsq_quantize(kernel, ops.maximum(parameters[..., 0], 1e-8), self.bits,
                            self.ewgs_delta)

    def initial_parameters(self, kernel: np.ndarray, channel_axes: tuple) -> np.ndarray:
        step = lsq_initial_step(kernel, self.bits, channel_axes or None)
        return ops.convert_to_numpy(step)[..., None]
