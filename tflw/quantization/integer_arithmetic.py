"""TFLite-Micro's fixed-point rescaling, reproduced in float32 with `keras.ops`.

Every int8 kernel ends by rescaling an int32 accumulator with
`MultiplyByQuantizedMultiplier(x, M, shift)`: the real multiplier r = f * 2^e
(f in [0.5, 1)) is stored as a 31-bit M, and the product is rounded *twice*: once to the
nearest integer after multiplying by f * 2^max(e, 0), once when dividing by 2^max(-e, 0)
(half away from zero). Rounding the exact product once, as float fake-quant does, moves
an output by one LSB whenever the two disagree. These functions let tflw's layers compute
what the microcontroller computes, so QAT and `tflw.verify` see the device's numbers.

TFLite computes each effective scale in double from the float32 scales in the flatbuffer
and rounds its fraction to 31 bits; a ratio computed in float32 can land on the other
side of a tie (measured: a QUANTIZE by 1.25000001 that float32 saw as exactly 1.25 moved
30 % of a tensor by one LSB). So ratios and products here are computed in `wide()`
precision, float64 wherever the backend has it.

```python
y = requantize(acc_int, wide(s_in) * wide(s_w) / wide(s_out))   # integer-valued floats
```
"""

import keras
from keras import ops


def wide(x):
    """`x` as float64 (float32 on JAX without x64, which has no float64)."""
    if keras.backend.backend() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            return ops.cast(x, "float32")
    return ops.cast(x, "float64")


def round_half_away_from_zero(x):
    return ops.sign(x) * ops.floor(ops.abs(x) + 0.5)


def frexp(ratio) -> tuple:
    """(f, e) with ratio = f * 2^e and f in [0.5, 1), elementwise, as floats."""
    e = ops.floor(ops.log2(ratio)) + 1.0
    # log2 can land one off next to a power of two: fix e so that f is in [0.5, 1).
    e = e + ops.cast(ratio / 2.0**e >= 1.0, e.dtype) - ops.cast(ratio / 2.0**e < 0.5, e.dtype)
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
    channel; compute it with `wide`) as TFLite-Micro's conv, depthwise, fully-connected,
    MUL and QUANTIZE kernels do: the fraction rounded to a 31-bit multiplier
    (`QuantizeMultiplier`), then `MultiplyByQuantizedMultiplier`. Returns float32."""
    return ops.cast(requantize_wide(x, ratio), "float32")


def requantize_wide(x, ratio):
    """`requantize` in `wide()` precision, for intermediates beyond float32's 24 bits
    (ADD shifts its inputs left by 20 bits before rescaling them)."""
    x, ratio = wide(x), wide(ratio)
    f, e = frexp(ratio)
    f = ops.round(f * 2.0**31) / 2.0**31
    f, e = ops.where(f >= 1.0, f / 2.0, f), ops.where(f >= 1.0, e + 1.0, e)  # rounded up to 1
    return multiply_by_quantized_multiplier(x, f, e)


def requantize_reduced(x, ratio):
    """TFLite-Micro's 64-bit `MultiplyByQuantizedMultiplier`, which rescales the int64
    accumulator of its int16 kernels with an int64 bias (DEPTHWISE_CONV_2D in tflw's 16x8
    models): the 31-bit multiplier M rounded to 15 bits, M' = min((M + 2^15) >> 16,
    2^15 - 1), and one rounding, y = floor(x * M' * 2^(e - 15) + 0.5). Returns float32."""
    x, ratio = wide(x), wide(ratio)
    f, e = frexp(ratio)
    multiplier = ops.round(f * 2.0**31)
    multiplier, e = (ops.where(multiplier >= 2.0**31, multiplier / 2.0, multiplier),
                     ops.where(multiplier >= 2.0**31, e + 1.0, e))
    reduced = ops.where(multiplier < 2147418112.0,  # 0x7FFF0000
                        ops.floor((multiplier + 2.0**15) / 2.0**16), 32767.0)
    return ops.cast(ops.floor(x * reduced * 2.0 ** (e - 15.0) + 0.5), "float32")
