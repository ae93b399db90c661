"""APoT: additive powers-of-two weight levels with a learned clipping level.

```python
apot_levels(4)                                  # 8 magnitudes in [0, 1]
w_q = apot_quantize(w, alpha, bits=4, channel_axes=(3,))
```

Each magnitude level is a sum of powers of two, so the levels are dense near zero, where
most weights are, and sparse near the clipping level. On TFLite-Micro they are int8
values (at most 2^k - 1 per channel) that `export` LUT-compresses to k bits.
"""

import itertools

import keras
import numpy as np
from keras import ops

from tflw.quantization.ewgs import discretize
from tflw.quantization.weight_quantizer import KBitWeights

# Candidate starting clipping levels, in standard deviations of the channel's weights.
ALPHA_GRID = np.linspace(0.25, 4.0, 31)


def apot_levels(bits: int) -> np.ndarray:
    """The ascending magnitude levels in [0, 1] for `bits`-bit signed weights.

    The b = bits - 1 magnitude bits are split over n = ceil(b / 2) terms (term i gets
    m_i bits, the first terms one more when b is odd); term i takes the values
    {0} U {2^-(i + 1 + j n) : j = 0 .. 2^m_i - 2} (Li et al., eq. 5), and the levels are
    every sum of one value per term, divided by the largest. At 2 bits that is {0, 1}
    (ternary); at 4 bits, 8 levels from 0 to 1 with the smallest step 1/24.
    """
    magnitude_bits = bits - 1
    terms = max(1, (magnitude_bits + 1) // 2)
    widths = [magnitude_bits // terms + (i < magnitude_bits % terms) for i in range(terms)]
    choices = [[0.0] + [2.0 ** -(i + 1 + j * terms) for j in range(2 ** m - 1)]
               for i, m in enumerate(widths)]
    sums = np.unique([sum(combination) for combination in itertools.product(*choices)])
    return (sums / sums.max()).astype("float32")


def _nearest(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """numpy: each value clipped to [-1, 1] and moved to the nearest signed level."""
    clipped = np.clip(values, -1.0, 1.0)
    index = np.abs(np.abs(clipped)[..., None] - levels).argmin(axis=-1)
    return np.sign(clipped) * levels[index]


def apot_quantize(weights, alpha, bits: int, channel_axes: tuple, ewgs_delta: float = 0.0):
    """APoT quantization with weight normalization and the reparameterized clipping function.

    With sigma the standard deviation of the weights of each channel, w_n = w / sigma, a
    learned clipping level alpha (in units of sigma) and P the projection onto the nearest
    signed level of `apot_levels(bits)`:

        q(w) = sigma * alpha * P(clip(w_n / alpha, -1, 1))

    Gradients (straight-through for P, or EWGS with `ewgs_delta` > 0, with the rounding
    error measured in units of the spacing between the two levels around each weight):

        dq/dw     = 1 inside the clipping range, 0 outside (through w_n; sigma too)
        dq/dalpha = 0 inside, sigma * sign(w) outside (the RCF gradient: alpha moves
                    only with the clipped weights)

    Normalization divides by sigma only: subtracting the mean, as the paper does when
    training from scratch, would change a pretrained float model's function.

    Args:
        weights: float tensor whose trailing `channel_axes` index its channels.
        alpha: positive clipping level per channel, broadcastable to `weights`.
        bits: 2 to 7.
        channel_axes: the axes that index one channel; () for one set over the tensor.
        ewgs_delta: EWGS's gradient scaling factor; 0 is the straight-through estimator.

    References:
        Y. Li, X. Dong, W. Wang, "Additive Powers-of-Two Quantization: An Efficient
        Non-uniform Discretization for Neural Networks", ICLR 2020.
    """
    levels = apot_levels(bits)
    reduce = tuple(i for i in range(len(weights.shape)) if i not in channel_axes)
    sigma = ops.std(weights, axis=reduce, keepdims=True) + 1e-8
    bound = sigma * ops.maximum(alpha, 1e-3)
    # clipped in weight units: inside the range it is w itself (so alpha gets no
    # gradient there, RCF), outside it is +-sigma * alpha (so alpha gets sigma * sign(w))
    clipped = ops.minimum(ops.maximum(weights, -bound), bound)
    magnitude = ops.stop_gradient(ops.abs(clipped / bound))
    # the nearest level: how many midpoints between levels the magnitude has passed
    midpoints = ops.convert_to_tensor((levels[1:] + levels[:-1]) / 2.0)
    index = ops.cast(ops.sum(ops.cast(magnitude[..., None] >= midpoints, "int32"), axis=-1), "int32")
    nearest = ops.take(ops.convert_to_tensor(levels), index)
    gaps = np.diff(levels)
    spacing_above = ops.take(ops.convert_to_tensor(np.append(gaps, gaps[-1])), index)
    spacing_below = ops.take(ops.convert_to_tensor(np.insert(gaps, 0, gaps[0])), index)
    spacing = ops.where(magnitude >= nearest, spacing_above, spacing_below)
    return discretize(clipped, ops.sign(clipped) * nearest * bound, spacing * bound, ewgs_delta)


@keras.saving.register_keras_serializable(package="tflw")
class ApotWeights(KBitWeights):
    """`apot_quantize` at a fixed bit width: one learned clipping level per channel.

    Args:
        bits: 2 to 7.
        ewgs_delta: EWGS's gradient scaling (0: straight-through), see `apot_quantize`.
    """

    method = "APoT"

    def __call__(self, kernel, parameters, channel_axes: tuple):
        return apot_quantize(kernel, parameters[..., 0], self.bits, channel_axes, self.ewgs_delta)

    def initial_parameters(self, kernel: np.ndarray, channel_axes: tuple) -> np.ndarray:
        """Per channel, the clipping level (in standard deviations) of least squared
        quantization error: Li et al.'s fixed start of 3 sends most weights to zero at 2
        bits (measured: 82 % on MNIST, spread 14 pp)."""
        channels = tuple(kernel.shape[a] for a in channel_axes)
        columns = kernel.reshape(-1, int(np.prod(channels)))
        normalized = columns / (columns.std(axis=0) + 1e-8)
        levels = apot_levels(self.bits)
        errors = [np.mean((normalized - alpha * _nearest(normalized / alpha, levels)) ** 2, axis=0)
                  for alpha in ALPHA_GRID]
        best = ALPHA_GRID[np.argmin(np.stack(errors), axis=0)]
        return best.reshape(*channels, 1).astype("float32")
