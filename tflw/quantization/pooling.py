"""`QuantGlobalAveragePooling2D`: global average pooling bit-exact with TFLite-Micro's MEAN.

TFLite-Micro's int8 MEAN sums the int8 inputs, then rescales the sum by
s_in / (s_out * n) in fixed point with *two* roundings (`MultiplyByQuantizedMultiplier`
after folding 1/n into the multiplier, `reduce.h`). When s_in is several times s_out, as it
usually is after pooling, the second rounding moves about one output in eight by one LSB
compared with rounding the exact mean once. This layer reproduces those two roundings in
its forward pass, so QAT trains on, and `tflw.verify` compares against, what the
microcontroller computes. The gradient is that of the plain mean (straight-through).

It needs its input's scale, so it quantizes its input itself: the rewriter hands it the
unquantized output of a producer whose only consumer it is. Otherwise (the input has other
consumers) it is the plain mean followed by an output fake-quant.

```python
y = QuantGlobalAveragePooling2D(owns_input=True)(conv_output_before_its_quantizer)
```
"""

import math

import keras
from keras import ops

from tflw.conversion_trace import tracing_for_conversion
from tflw.quantization.fake_quant import FakeQuant
from tflw.quantization.quantizers import fake_quant_range


def _scale(quantizer: FakeQuant):
    return (quantizer.range_max - quantizer.range_min) / 255.0


def _round_half_away(x):
    return ops.sign(x) * ops.floor(ops.abs(x) + 0.5)


def tflm_mean(x, count: int, input_quant: FakeQuant, output_quant: FakeQuant):
    """The dequantized output of TFLite-Micro's int8 MEAN over the spatial axes.

    With acc = sum(q_in - z_in), ratio = s_in / s_out = f * 2^e (f in [0.5, 1)) and
    shift = min(floor(log2 n), 31 + e), TFLite-Micro computes

        a = floor(acc * f * 2^shift / n * 2^max(e - shift, 0) + 0.5)
        y = round_half_away_from_zero(a / 2^max(shift - e, 0))

    then clamps y + z_out to int8. In float32 this matches except when a product lands
    within ~1e-7 (relative) of a rounding boundary.
    """
    s_in, s_out = _scale(input_quant), _scale(output_quant)
    acc = ops.round(ops.sum(x, axis=(1, 2)) / s_in)
    ratio = s_in / s_out
    e = ops.floor(ops.log2(ratio)) + 1.0
    e = e + ops.cast(ratio / 2.0**e >= 1.0, "float32") - ops.cast(ratio / 2.0**e < 0.5, "float32")
    shift = ops.minimum(float(int(math.log2(count))), 31.0 + e)
    left, right = ops.maximum(e - shift, 0.0), ops.maximum(shift - e, 0.0)
    a = ops.floor(acc * (ratio / 2.0**e) * 2.0**shift / count * 2.0**left + 0.5)
    y = _round_half_away(a / 2.0**right)
    return fake_quant_range(y * s_out, output_quant.range_min, output_quant.range_max)


@keras.saving.register_keras_serializable(package="tflw")
class QuantGlobalAveragePooling2D(keras.layers.Layer):
    """GlobalAveragePooling2D (channels_last) with int8 output, exact to TFLite-Micro.

    Args:
        keepdims: keep the pooled spatial axes as size 1, as Keras's layer does.
        owns_input: quantize the input here (and match TFLite-Micro exactly); False when
            the input is already quantized elsewhere (then only the output is quantized).
        ema_decay: moving-average decay of the learned ranges.
    """

    def __init__(self, keepdims: bool = False, owns_input: bool = True,
                 ema_decay: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        self.keepdims = keepdims
        self.owns_input = owns_input
        self.ema_decay = ema_decay
        self.input_quant = FakeQuant(ema_decay, name="input_quant") if owns_input else None
        self.output_quant = FakeQuant(ema_decay, name="output_quant")

    def build(self, input_shape):
        if self.owns_input:
            self.input_quant.build(input_shape)
        self.output_quant.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=False):
        x = self.input_quant(inputs, training=training) if self.owns_input else inputs
        y = self.output_quant(ops.mean(x, axis=(1, 2)), training=training)
        if self.owns_input and not tracing_for_conversion():
            count = int(inputs.shape[1]) * int(inputs.shape[2])
            exact = tflm_mean(x, count, self.input_quant, self.output_quant)
            y = y + ops.stop_gradient(exact - y)
        return ops.expand_dims(ops.expand_dims(y, 1), 1) if self.keepdims else y

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], 1, 1, input_shape[3])
        return (input_shape[0], input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(keepdims=self.keepdims, owns_input=self.owns_input,
                      ema_decay=self.ema_decay)
        return config
