"""`FakeQuant`: the per-tensor int8 quantizer of one activation tensor.

```python
x = keras.Input((28, 28, 1))
y = tflw.quantization.FakeQuant(name="input_quant")(x)   # range learned while training
```
"""

from typing import Optional, Sequence

import keras
from keras import ops

from tflw.quantization.integer_arithmetic import wide
from tflw.quantization.quantizers import fake_quant_range
from tflw.quantization.replicas import global_min_max


@keras.saving.register_keras_serializable(package="tflw")
class FakeQuant(keras.layers.Layer):
    """Fake-quantizes its input to int8 on a learned or fixed range.

    While training (or calibrating, i.e. calling with `training=True`), the range follows
    an exponential moving average of each batch's min/max; the first batch sets it
    directly. A `fixed_range` is used as is: that is how TFLite's fixed output scales of
    softmax, logistic and tanh are matched exactly.

    Args:
        ema_decay: weight of the old range in the moving average.
        fixed_range: `(min, max)` to use instead of a learned range.
        follows_consumer: the range is a consumer's (a Concatenate's, which writes it while
            training); while training the tensor passes unquantized, so that the consumer's
            range sees it whole.
    """

    def __init__(
        self,
        ema_decay: float = 0.99,
        fixed_range: Optional[Sequence[float]] = None,
        follows_consumer: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.follows_consumer = follows_consumer
        self.ema_decay = float(ema_decay)
        self.fixed_range = None if fixed_range is None else tuple(float(v) for v in fixed_range)

    def build(self, input_shape):
        low, high = self.fixed_range or (0.0, 0.0)
        self.range_min = self.add_weight(
            name="range_min", shape=(), initializer=keras.initializers.Constant(low),
            trainable=False,
        )
        self.range_max = self.add_weight(
            name="range_max", shape=(), initializer=keras.initializers.Constant(high),
            trainable=False,
        )

    def call(self, inputs, training=False):
        if training and self.follows_consumer:
            return inputs
        if training and self.fixed_range is None:
            batch_min, batch_max = global_min_max(ops.min(inputs), ops.max(inputs))
            batch_min, batch_max = ops.minimum(batch_min, 0.0), ops.maximum(batch_max, 0.0)
            is_set = ops.greater(self.range_max, self.range_min)
            decay = ops.where(is_set, self.ema_decay, 0.0)
            self.range_min.assign(decay * self.range_min + (1.0 - decay) * batch_min)
            self.range_max.assign(decay * self.range_max + (1.0 - decay) * batch_max)
        return fake_quant_range(inputs, self.range_min, self.range_max)

    def scale(self):
        """The int8 scale of this tensor: (max - min) / 255 (nudging keeps it), computed
        as the converter does, in double, then stored as float32."""
        return ops.cast((wide(self.range_max) - wide(self.range_min)) / 255.0, "float32")

    def zero_point(self):
        """The int8 zero point after TensorFlow's nudging (0 is exactly representable)."""
        nudged = ops.clip(ops.round(-self.range_min / self.scale()), 0.0, 255.0)
        return nudged - 128.0

    def get_config(self):
        config = super().get_config()
        config.update(ema_decay=self.ema_decay, fixed_range=self.fixed_range,
                      follows_consumer=self.follows_consumer)
        return config


class OwnOutputRange:
    """Mixin (put it first) for a layer whose int8 output has a learned range of its own,
    held by the sublayer `output_quant`."""

    def __init__(self, *args, ema_decay: float = 0.99, **kwargs):
        super().__init__(*args, **kwargs)
        self.ema_decay = ema_decay
        self.output_quant = FakeQuant(ema_decay, name="output_quant")

    def get_config(self):
        return {**super().get_config(), "ema_decay": self.ema_decay}
