"""`QuantHardSwish`: hard-swish with int8 output, exact to TFLite-Micro's HARD_SWISH.

TFLite-Micro computes int8 hard-swish in int16 fixed point (`reference_ops::HardSwish`):
the input moves to a 7-bit finer scale, a "reluish" factor relu6(x + 3) / 6 is built with
two 16-bit multipliers and shifts, and the product is rescaled with a truncating high
multiply. Its roundings differ from rounding x * relu6(x + 3) / 6 once: measured, 1 LSB at
the op and 2 LSB after a following Dense. In evaluation this layer reproduces the integer
path from its input's scale; training uses the float function.

```python
y = QuantHardSwish(name="conv_3_hard_swish")(quantized_conv_output)
```
"""

import keras
from keras import ops

from tflw.conversion_trace import without_device_arithmetic
from tflw.quantization.fake_quant import FakeQuant, OwnOutputRange
from tflw.quantization.input_link import LinksInputQuantizer
from tflw.quantization.integer_arithmetic import frexp, round_half_away_from_zero, wide

INT16_MIN, INT16_MAX = -32768.0, 32767.0


def _is_negative(x):
    return ops.cast(x < 0, x.dtype)


def _trunc_divide(x, divisor: float):
    """C++ integer division: the quotient truncated towards zero."""
    return ops.sign(x) * ops.floor(ops.abs(x) / divisor)


def _high_mul(a, b, rounding: bool):
    """gemmlowp's 16-bit (Saturating)(Rounding)DoublingHighMul: a * b / 2^15."""
    product = a * b
    if rounding:
        product = product + 2.0**14 - _is_negative(product) * (2.0**15 - 1.0)
    return _trunc_divide(product, 2.0**15)


def _rounding_divide_by_pot(x, exponent):
    """gemmlowp's RoundingDivideByPOT: x / 2^exponent, ties away from zero."""
    power = 2.0**exponent
    quotient = ops.floor(x / power)
    remainder = x - quotient * power
    threshold = ops.floor((power - 1.0) / 2.0) + _is_negative(x)
    return quotient + ops.cast(remainder > threshold, x.dtype)


def _saturating_left_shift(x, amount):
    return ops.clip(x * 2.0**amount, INT16_MIN, INT16_MAX)


def _int16_multiplier(real):
    """`QuantizeMultiplier` then `DownScaleInt32ToInt16Multiplier`: (int16 multiplier,
    exponent) for a positive real multiplier."""
    fraction, exponent = frexp(wide(real))
    q31 = round_half_away_from_zero(fraction * 2.0**31)
    exponent = ops.where(q31 >= 2.0**31, exponent + 1.0, exponent)
    q31 = ops.where(q31 >= 2.0**31, q31 / 2.0, q31)
    q15 = ops.where(q31 >= 2.0**31 - 1.0 - 2.0**15, INT16_MAX, ops.floor((q31 + 2.0**15) / 2.0**16))
    return q15, exponent


def tflm_hard_swish(x, input_quant: FakeQuant, output_quant: FakeQuant):
    """The dequantized output of TFLite-Micro's int8 HARD_SWISH of the int8 tensor `x`."""
    input_scale, output_scale = input_quant.scale(), output_quant.scale()
    hires_scale = input_scale * (1.0 / 128.0)  # float32, as the kernel's Prepare
    output_multiplier, output_exponent = _int16_multiplier(hires_scale / output_scale)
    reluish_multiplier, reluish_exponent = _int16_multiplier(hires_scale / (3.0 / 32768.0))

    hires = wide(ops.round(x / input_scale)) * 128.0                 # (q - z_in) << 7
    on_output_scale = _high_mul(hires, output_multiplier, rounding=True)
    positive = reluish_exponent > 0
    reluish = ops.where(positive, _saturating_left_shift(hires, ops.maximum(reluish_exponent - 1.0, 0.0)), hires)
    reluish = _high_mul(reluish, reluish_multiplier, rounding=True)
    reluish = ops.where(positive, _saturating_left_shift(reluish, 1.0), reluish)
    reluish = ops.where(reluish_exponent < 0,
                        _rounding_divide_by_pot(reluish, ops.maximum(-reluish_exponent, 0.0)), reluish)
    reluish = ops.floor((reluish + 2.0**15) / 2.0)                   # [-1, 1] -> [0, 1]
    product = _high_mul(reluish, on_output_scale, rounding=False)
    y = _rounding_divide_by_pot(product, -output_exponent)
    zero_point = wide(output_quant.zero_point())
    y = ops.clip(y + zero_point, -128.0, 127.0) - zero_point
    return ops.cast(y, "float32") * output_scale


@keras.saving.register_keras_serializable(package="tflw")
class QuantHardSwish(OwnOutputRange, LinksInputQuantizer, keras.layers.Layer):
    """x * relu6(x + 3) / 6 (Keras's hard_silu) on an int8 input, output on a learned range.

    Args:
        ema_decay: moving-average decay of the learned output range.
    """

    def build(self, input_shape):
        self.output_quant.build(input_shape)

    def call(self, inputs, training=False):
        outputs = self.output_quant(keras.activations.hard_silu(inputs), training=training)
        quantizer = self.linked_input_quantizer()
        if training or quantizer is None or without_device_arithmetic():
            return outputs
        exact = tflm_hard_swish(inputs, quantizer, self.output_quant)
        return outputs + ops.stop_gradient(exact - outputs)

    def compute_output_shape(self, input_shape):
        return input_shape
