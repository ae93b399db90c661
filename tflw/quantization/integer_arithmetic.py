"""TFLite-Micro's fixed-point rescaling, reproduced in float32 with `keras.ops`.

Every int8 kernel ends by rescaling an int32 accumulator with
`MultiplyByQuantizedMultiplier(x, M, shift)`: the real multiplier r = f * 2^e
(f in [0.5, 1)) is stored as a 31-bit M, and the product is rounded *twice*: once to the
nearest integer after multiplying by f * 2^max(e, 0), once when dividing by 2^max(-e, 0)
(half away from zero). Rounding the exact product once, as float fake-quant does, moves
an output by one LSB whenever the two disagree. These functions let tflw's layers compute
what the microcontroller computes, so QAT and `tflw.verify` see the device's numbers.

```python
y = requantize(acc_int, s_in * s_w / s_out)   # integer-valued floats
```
"""

from keras import ops


def round_half_away_from_zero(x):
    return ops.sign(x) * ops.floor(ops.abs(x) + 0.5)


def frexp(ratio) -> tuple:
    """(f, e) with ratio = f * 2^e and f in [0.5, 1), elementwise, as floats."""
    e = ops.floor(ops.log2(ratio)) + 1.0
    # log2 can land one off next to a power of two: fix e so that f is in [0.5, 1).
    e = e + ops.cast(ratio / 2.0**e >= 1.0, "float32") - ops.cast(ratio / 2.0**e < 0.5, "float32")
    return ratio / 2.0**e, e


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite-Micro's `MultiplyByQuantizedMultiplier(x, M, shift)` for integer-valued `x`,
    with `multiplier` = M / 2^31 as a real number and `shift` an integer-valued exponent:

        a = floor(x * 2^max(shift, 0) * multiplier + 0.5)    (SaturatingRoundingDoublingHighMul)
        y = round_half_away_from_zero(a / 2^max(-shift, 0))  (RoundingDivideByPOT)
    """
    a = ops.floor(x * 2.0 ** ops.maximum(shift, 0.0) * multiplier + 0.5)
    return round_half_away_from_zero(a / 2.0 ** ops.maximum(-shift, 0.0))


def requantize(x, ratio):
    """Rescale integer-valued `x` by the real `ratio` (e.g. s_in * s_w / s_out, per
    channel) as TFLite-Micro's conv, depthwise and fully-connected kernels do."""
    f, e = frexp(ratio)
    return multiply_by_quantized_multiplier(x, f, e)
