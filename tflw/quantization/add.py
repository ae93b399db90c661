"""`QuantAdd`: a two-input Add (+ fused ReLU/ReLU6) exact to TFLite-Micro's ADD.

TFLite-Micro's int8 and int16 ADD (`AddElementwise`, `AddGeneralParamScale`) does not add
real values and round once: it shifts each zero-point-corrected input left by 20 bits (15
at int16), rescales each by s_i / (2 max(s1, s2)) with a fixed-point multiplier, adds the
two, and rescales the sum by 2 max(s1, s2) / (2^shift s_out), rounding at every step. Float
fake quantization of the real sum leaves about one output in a few hundred one LSB away,
and more at int16, where later layers grow it (measured: 4 LSB on the demo CNN). In
evaluation this layer computes the integer path from its inputs' scales; training uses the
float sum.

```python
y = QuantAdd(activation="relu", name="residual")([quantized_a, quantized_b])
```
"""

import keras
from keras import ops

from tflw.conversion_trace import without_device_arithmetic
from tflw.quantization.fake_quant import FakeQuant, OwnOutputRange
from tflw.quantization.folded import ACTIVATIONS
from tflw.quantization.input_link import LinksInputQuantizer
from tflw.quantization.integer_arithmetic import requantize_wide, wide


def tflm_add(x1, x2, quant1: FakeQuant, quant2: FakeQuant, output_quant: FakeQuant,
             activation: str = "linear"):
    """The dequantized output of TFLite-Micro's ADD of two quantized tensors: with
    L = 20 (int8) or 15 (int16), m = 2 max(s1, s2) and R(x, r) the fixed-point rescale,

        y = clamp(z_out + R(R((q1 - z1) 2^L, s1 / m) + R((q2 - z2) 2^L, s2 / m), m / (2^L s_out)))
    """
    shift = 2.0 ** (15 if output_quant.bits == 16 else 20)
    s1, s2, s_out = quant1.scale(), quant2.scale(), output_quant.scale()
    twice_max = 2.0 * ops.maximum(wide(s1), wide(s2))
    a1 = requantize_wide(ops.round(x1 / s1) * shift, wide(s1) / twice_max)
    a2 = requantize_wide(ops.round(x2 / s2) * shift, wide(s2) / twice_max)
    total = requantize_wide(a1 + a2, twice_max / (shift * wide(s_out)))
    return output_quant.quantized(ACTIVATIONS[activation](ops.cast(total, "float32") * s_out))


@keras.saving.register_keras_serializable(package="tflw")
class QuantAdd(OwnOutputRange, LinksInputQuantizer, keras.layers.Add):
    """Add of two quantized tensors, ReLU/ReLU6 fused, output on its own learned range.

    Args:
        activation: "linear", "relu" or "relu6" (TFLite fuses it into ADD).
        ema_decay: moving-average decay of the learned output range.
        activation_bits: 8, or 16 for the 16x8 scheme.
    """

    def __init__(self, activation: str = "linear", **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"{self.name}: activation must be one of {sorted(ACTIVATIONS)}")
        self.activation = activation

    def build(self, input_shape):
        super().build(input_shape)
        self.output_quant.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=False):
        summed = ACTIVATIONS[self.activation](super().call(inputs))
        outputs = self.output_quant(summed, training=training)
        quantizers = self.linked_input_quantizers()
        if training or without_device_arithmetic() or len(quantizers) != 2 or None in quantizers:
            return outputs
        exact = tflm_add(*inputs, *quantizers, self.output_quant, self.activation)
        return outputs + ops.stop_gradient(exact - outputs)

    def compute_output_spec(self, inputs, training=False):
        return super().compute_output_spec(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}
