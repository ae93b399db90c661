"""Fake-quantization functions matching TFLite-Micro's int8 kernels.

Weights are symmetric, narrow-range int8 ([-127, 127]) per output channel or per tensor;
activations are asymmetric int8 with a range learned as an exponential moving average of
the batch range. Both use `keras.quantizers.fake_quant_with_min_max_vars`, which on the
TensorFlow backend emits the FakeQuant ops that the TFLite converter turns into int8
tensors with exactly these scales and zero points.

```python
w_q = fake_quant_weights(kernel, axis=-1)          # per-channel, [-127, 127]
y_q = fake_quant_range(y, range_min, range_max)    # per-tensor, [-128, 127]
```
"""

from typing import Optional

import keras
from keras import ops

from tflw.quantization.integer_arithmetic import wide

# A channel whose weights are all zero (a pruned filter) gets the tensor's largest range:
# measured, the converter quantizes such a channel's bias as if it had that range, so any
# other range would rescale the bias on the device.
_MIN_WEIGHT_RANGE = 1e-8


def fake_quant_weights(weights, axis: Optional[int] = None, num_bits: int = 8):
    """Symmetric narrow-range fake quantization of a weight tensor.

    With m = max|w| (per channel along `axis`, or over the whole tensor when `axis` is None)
    and s = m / (2^(b-1) - 1):

        q(w) = s * clip(round(w / s), -(2^(b-1) - 1), 2^(b-1) - 1)

    Gradient: straight-through, dq/dw = 1 (w is never clipped since |w| <= m).

    Args:
        weights: float tensor.
        axis: channel axis for per-channel ranges, or None for one range.
        num_bits: bit width (8 for TFLite-Micro int8 kernels).

    Returns:
        The fake-quantized tensor, same shape as `weights`.

    References:
        Jacob et al., "Quantization and Training of Neural Networks for Efficient
        Integer-Arithmetic-Only Inference", CVPR 2018.
    """
    max_abs = _max_abs(weights, axis)
    return keras.quantizers.fake_quant_with_min_max_vars(
        weights, -max_abs, max_abs, num_bits=num_bits, narrow_range=True,
        axis=None if axis is None else axis % len(weights.shape),
    )


def weight_scale(weights, axis: Optional[int] = None, num_bits: int = 8):
    """The scale s = max|w| / (2^(b-1) - 1) that `fake_quant_weights` uses (per channel
    along `axis`, or one scalar), unrounded: in `wide()` precision, as the converter
    computes it before storing it as float32."""
    return wide(_max_abs(weights, axis)) / (2.0 ** (num_bits - 1) - 1.0)


def _max_abs(weights, axis: Optional[int]):
    largest = ops.maximum(ops.max(ops.abs(weights)), _MIN_WEIGHT_RANGE)
    if axis is None:
        return largest
    axis = axis % len(weights.shape)
    reduce_axes = tuple(i for i in range(len(weights.shape)) if i != axis)
    per_channel = ops.max(ops.abs(weights), axis=reduce_axes)
    return ops.where(per_channel > _MIN_WEIGHT_RANGE, per_channel, largest)


def fake_quant_range(x, range_min, range_max, num_bits: int = 8):
    """Asymmetric per-tensor fake quantization on a (nudged) range.

    The range is nudged so that 0 is exactly representable; with s = (max - min) / (2^b - 1)
    and z the nudged zero point:

        q(x) = s * (clip(round(x / s) + z, 0, 2^b - 1) - z)

    Gradient: straight-through inside the range, 0 outside; the range bounds receive the
    gradient of the clipped values.

    References:
        Jacob et al., CVPR 2018 (see `fake_quant_weights`).
    """
    return keras.quantizers.fake_quant_with_min_max_vars(
        x, range_min, range_max, num_bits=num_bits, narrow_range=False
    )
