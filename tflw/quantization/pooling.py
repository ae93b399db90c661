"""Average pooling bit-exact with TFLite-Micro: `QuantGlobalAveragePooling2D` (MEAN) and
`QuantAveragePooling2D` (AVERAGE_POOL_2D).

TFLite-Micro's int8 MEAN sums the int8 inputs, then rescales the sum by
s_in / (s_out * n) in fixed point with *two* roundings (`MultiplyByQuantizedMultiplier`
after folding 1/n into the multiplier, `reduce.h`). When s_in is several times s_out, as it
usually is after pooling, the second rounding moves about one output in eight by one LSB
compared with rounding the exact mean once. In evaluation this layer reproduces those two
roundings (it finds its input's scale in the producer's quantizer, see
`tflw.quantization.input_link`), so `tflw.verify` compares against what the
microcontroller computes; training uses the plain mean.

AVERAGE_POOL_2D keeps its input's scale and rounds the mean of the raw int8 values half
away from zero; with the zero point in those values, ties go the other way from float
rounding of the real mean. `QuantAveragePooling2D` reproduces that (for 'valid' padding,
where every window counts all its elements).

```python
y = QuantGlobalAveragePooling2D()(quantized_feature_map)
y = QuantAveragePooling2D(pool_size=2)(quantized_feature_map)
```
"""

import math

import keras
from keras import ops

from tflw.conversion_trace import without_device_arithmetic
from tflw.quantization.fake_quant import FakeQuant, OwnOutputRange
from tflw.quantization.input_link import LinksInputQuantizer
from tflw.quantization.integer_arithmetic import (
    frexp,
    multiply_by_quantized_multiplier,
    round_half_away_from_zero,
    wide,
)


def tflm_mean(x, count: int, input_scale, output_quant: FakeQuant):
    """The dequantized output of TFLite-Micro's int8 MEAN over the spatial axes.

    With acc = sum(q_in - z_in), ratio = s_in / s_out = f * 2^e (f in [0.5, 1)) and
    shift = min(floor(log2 n), 31 + e), TFLite-Micro computes

        a = floor(acc * f * 2^shift / n * 2^max(e - shift, 0) + 0.5)
        y = round_half_away_from_zero(a / 2^max(shift - e, 0))

    then clamps y + z_out to int8 (int16 in the 16x8 scheme, same arithmetic). In float32
    this matches except when a product lands within ~1e-7 (relative) of a rounding boundary.
    """
    s_out = output_quant.scale()
    # in wide() precision: int16 sums pass float32's 24 bits
    acc = ops.round(ops.sum(wide(x), axis=(1, 2)) / wide(input_scale))
    f, e = frexp(wide(input_scale) / wide(s_out))
    shift = ops.minimum(float(int(math.log2(count))), 31.0 + e)
    y = multiply_by_quantized_multiplier(acc, f * 2.0**shift / count, e - shift)
    return output_quant.quantized(ops.cast(y, "float32") * s_out)


@keras.saving.register_keras_serializable(package="tflw")
class QuantGlobalAveragePooling2D(OwnOutputRange, LinksInputQuantizer, keras.layers.Layer):
    """GlobalAveragePooling2D (channels_last) with int8 output, exact to TFLite-Micro.

    Args:
        keepdims: keep the pooled spatial axes as size 1, as Keras's layer does.
        ema_decay: moving-average decay of the learned output range.
        activation_bits: 8, or 16 for the 16x8 scheme.
    """

    def __init__(self, keepdims: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.keepdims = keepdims

    def build(self, input_shape):
        self.output_quant.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=False):
        y = self.output_quant(ops.mean(inputs, axis=(1, 2)), training=training)
        input_scale = self.input_scale()
        if not training and input_scale is not None and not without_device_arithmetic():
            count = int(inputs.shape[1]) * int(inputs.shape[2])
            y = y + ops.stop_gradient(tflm_mean(inputs, count, input_scale, self.output_quant) - y)
        return ops.expand_dims(ops.expand_dims(y, 1), 1) if self.keepdims else y

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], 1, 1, input_shape[3])
        return (input_shape[0], input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(keepdims=self.keepdims)
        return config


@keras.saving.register_keras_serializable(package="tflw")
class QuantAveragePooling2D(LinksInputQuantizer, keras.layers.AveragePooling2D):
    """AveragePooling2D whose evaluation output is TFLite-Micro's int8 AVERAGE_POOL_2D:
    round_half_away_from_zero(mean of the int8 inputs), on the input's own scale."""

    keeps_input_scale = True  # for `input_quantizer`: the output has the input's quantizer

    def call(self, inputs, training=False):
        outputs = super().call(inputs)
        quantizer = self.linked_input_quantizer()
        if training or quantizer is None or self.padding != "valid" or without_device_arithmetic():
            return outputs
        scale, zero_point = quantizer.scale(), quantizer.zero_point()
        count = float(self.pool_size[0] * self.pool_size[1])
        window_sum = ops.round(super().call(ops.round(inputs / scale) + zero_point) * count)
        exact = (round_half_away_from_zero(window_sum / count) - zero_point) * scale
        return outputs + ops.stop_gradient(exact - outputs)
