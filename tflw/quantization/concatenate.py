"""`QuantConcatenate`: Concatenate with one int8 range, exact to TFLite-Micro.

TFLite's CONCATENATION needs every input on the output's scale. This layer fake-quantizes
its unquantized inputs on the one shared range, so the converter puts them on it: a tflw
linear layer that feeds only the concat writes straight to that scale (it has no
quantizer of its own), and an input already quantized elsewhere gets a QUANTIZE op.
(Without those quantizers, the converter adopts another input's scale for the concat and
requantizes its output, rounding twice.) In evaluation this layer reproduces both
paths: the producer's fixed-point output at the shared scale (`requantized`), and
TFLite-Micro's requantization of the others.

A tensor that feeds the concat *and* other layers keeps its quantizer, but that
quantizer follows the concat's range (`FakeQuant(follows_consumer=True)`, written here
while training): the converter would otherwise requantize it to the concat's scale,
sometimes as a QUANTIZE after it and sometimes folded into the op that makes it (ADD),
and the other consumers would read that copy.

```python
y = QuantConcatenate(axis=-1, name="concat")([conv_output, other_quantized_tensor])
```
"""

import keras
from keras import ops

from tflw.conversion_trace import without_device_arithmetic
from tflw.quantization.fake_quant import FakeQuant, OwnOutputRange
from tflw.quantization.input_link import input_quantizer, unquantized_producer
from tflw.quantization.integer_arithmetic import requantize, wide


def tflm_quantize(x, scale, target: FakeQuant):
    """TFLite-Micro's int8 -> int8 QUANTIZE (`Requantize`) of `x`, on int8 `scale`, onto
    `target`'s range: the fixed-point rescale of q - z_in, plus z_out, clamped."""
    rescaled = requantize(ops.round(x / scale), wide(scale) / wide(target.scale())) * target.scale()
    return target.quantized(rescaled)


class _Sources:
    """Untracked references to each input's producer or quantizer."""

    def __init__(self, tensors: list):
        self.producers = [unquantized_producer(t) for t in tensors]
        self.quantizers = [input_quantizer(t) for t in tensors]


@keras.saving.register_keras_serializable(package="tflw")
class QuantConcatenate(OwnOutputRange, keras.layers.Concatenate):
    """Concatenate whose output (and so every input) is quantized on one learned range."""

    def __call__(self, inputs, *args, **kwargs):
        if all(isinstance(t, keras.KerasTensor) for t in inputs):
            self._sources = _Sources(list(inputs))
        return super().__call__(inputs, *args, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self.output_quant.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=False):
        sources = getattr(self, "_sources", None)
        if training:  # one range over all inputs together
            self.output_quant(super().call(inputs), training=True)
            self.share_range()
            if self.output_quant.follows_consumer:  # the range is a later concat's
                return super().call(inputs)
        quant = self.output_quant
        # Quantize the unquantized inputs (and the output) on the shared range; an input
        # with a quantizer of its own keeps it (the converter adds QUANTIZE, and a second
        # fake-quant on it would leave a float tensor).
        own = sources.quantizers if sources is not None else [None] * len(inputs)
        parts = [x if q is not None else quant.quantized(x) for x, q in zip(inputs, own)]
        outputs = quant.quantized(super().call(parts))
        if training or sources is None or without_device_arithmetic():
            return outputs
        exact = [self._on_shared_scale(x, producer, quantizer)
                 for x, producer, quantizer in zip(inputs, sources.producers, sources.quantizers)]
        if any(part is None for part in exact):
            return outputs
        return outputs + ops.stop_gradient(super().call(exact) - outputs)

    def share_range(self) -> None:
        """Write this concat's range into the input quantizers that follow it."""
        for quantizer in getattr(self, "_sources", _Sources([])).quantizers:
            if getattr(quantizer, "follows_consumer", False):
                quantizer.range_min.assign(self.output_quant.range_min)
                quantizer.range_max.assign(self.output_quant.range_max)

    def compute_output_spec(self, inputs, training=False):
        return super().compute_output_spec(inputs)

    def _on_shared_scale(self, x, producer, quantizer):
        if producer is not None:
            return producer.requantized(x, self.output_quant)
        if quantizer is None:
            return None
        return tflm_quantize(x, quantizer.scale(), self.output_quant)



def share_concat_ranges(model: keras.Model) -> None:
    """Make every quantizer that follows a concat's range equal to it, downstream concats
    first. Training writes each one a step late, and a concat whose own range follows a
    later concat passes that on one step later still; export and calibration need them
    equal, or the converter requantizes."""
    for layer in reversed(model.layers):
        if isinstance(layer, QuantConcatenate):
            layer.share_range()
