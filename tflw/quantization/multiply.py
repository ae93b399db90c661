"""`QuantMultiply`: a two-input Multiply with int8 output, exact to TFLite-Micro's MUL.

TFLite-Micro's int8 MUL (`reference_integer_ops::MulElementwise`) multiplies the
zero-point-corrected inputs in int32 and rescales the product by s1 * s2 / s_out with
`MultiplyByQuantizedMultiplier`, rounding twice. Float fake quantization of the real
product rounds once, so about one output in a few hundred moves by one LSB, and a chain of
squeeze-excite gates adds those up (the property test measured 3 LSB on two chained
gates). In evaluation this layer reproduces the integer path from its inputs' scales;
training uses the float product, whose gradient the straight-through estimate keeps.

```python
y = QuantMultiply(name="se_scale")([quantized_features, quantized_gate])
```
"""

import keras
from keras import ops

from tflw.conversion_trace import without_device_arithmetic
from tflw.quantization.fake_quant import FakeQuant, OwnOutputRange
from tflw.quantization.input_link import LinksInputQuantizer
from tflw.quantization.integer_arithmetic import requantize, wide


def tflm_mul(x1, x2, scale1, scale2, output_quant: FakeQuant):
    """The dequantized output of TFLite-Micro's int8 MUL of two int8 tensors (with
    broadcasting): with p = (q1 - z1) * (q2 - z2),

        y = clamp(z_out + MultiplyByQuantizedMultiplier(p, s1 * s2 / s_out), -128, 127)
    """
    s_out, z_out = output_quant.scale(), output_quant.zero_point()
    product = ops.round(x1 / scale1) * ops.round(x2 / scale2)
    y = requantize(product, wide(scale1) * wide(scale2) / wide(s_out))
    return ops.clip(y, -128.0 - z_out, 127.0 - z_out) * s_out


@keras.saving.register_keras_serializable(package="tflw")
class QuantMultiply(OwnOutputRange, LinksInputQuantizer, keras.layers.Multiply):
    """Multiply of two int8 tensors whose output is quantized on its own learned range.

    Args:
        ema_decay: moving-average decay of the learned output range.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self.output_quant.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=False):
        outputs = self.output_quant(super().call(inputs), training=training)
        quantizers = self.linked_input_quantizers()
        if training or without_device_arithmetic() or len(quantizers) != 2 or None in quantizers:
            return outputs
        exact = tflm_mul(*inputs, quantizers[0].scale(), quantizers[1].scale(), self.output_quant)
        return outputs + ops.stop_gradient(exact - outputs)

    def compute_output_spec(self, inputs, training=False):
        return super().compute_output_spec(inputs)
