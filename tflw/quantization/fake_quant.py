"""`FakeQuant`: the per-tensor int8 (or int16) quantizer of one activation tensor.

```python
x = keras.Input((28, 28, 1))
y = tflw.quantization.FakeQuant(name="input_quant")(x)   # range learned while training
y16 = tflw.quantization.FakeQuant(bits=16)(x)            # TFLite's 16x8: symmetric int16
```
"""

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Optional, Sequence

import keras
from keras import ops

from tflw.quantization.integer_arithmetic import wide
from tflw.quantization.quantizers import fake_quant_range
from tflw.quantization.replicas import global_min_max

ACTIVATION_BITS = (8, 16)
# The narrowest learned range. An all-zero tensor (a dead ReLU) would get [0, 0], scale 0:
# JAX's and PyTorch's fake quantization return NaN for it (TensorFlow's op returns 0), and
# the device would divide by it. Any width holds its zeros exactly; this one keeps the
# next layer's int32 bias, bias / (s_in * s_w), far from overflowing.
MIN_RANGE = 1e-3
_RECORDER: ContextVar = ContextVar("tflw_fake_quant_recorder", default=None)
_FROZEN: ContextVar = ContextVar("tflw_fake_quant_frozen", default=False)


@contextmanager
def frozen_ranges() -> Iterator[None]:
    """Within it, training-mode calls quantize on the current ranges without moving them
    (reconstruction after calibration: `tflw.ptq.brecq`)."""
    token = _FROZEN.set(True)
    try:
        yield
    finally:
        _FROZEN.reset(token)


@contextmanager
def recording_inputs(record: Callable[["FakeQuant", object], None]) -> Iterator[None]:
    """Within it, every learned-range FakeQuant hands its input to `record(quantizer,
    tensor)` and passes it on unquantized (eager calls): the float activations a
    post-training range estimate needs (`tflw.ptq.ranges`)."""
    token = _RECORDER.set(record)
    try:
        yield
    finally:
        _RECORDER.reset(token)


@keras.saving.register_keras_serializable(package="tflw")
class FakeQuant(keras.layers.Layer):
    """Fake-quantizes its input to int8 (or int16) on a learned or fixed range.

    At 8 bits the range is asymmetric, [min, max] on 256 levels; at 16 bits it is
    symmetric, [-r, r] with r = max(-min, max) on 65,535 levels and zero point 0, as
    TFLite's 16x8 scheme (int16 activations, int8 weights) requires.

    While training (or calibrating, i.e. calling with `training=True`), the range follows
    an exponential moving average of each batch's min/max (widened to include 0, and to
    `MIN_RANGE` at least); the first batch sets it directly. A `fixed_range` is used as
    is: that is how TFLite's fixed output scales of softmax, logistic and tanh are matched
    exactly.

    Args:
        ema_decay: weight of the old range in the moving average.
        fixed_range: `(min, max)` to use instead of a learned range.
        follows_consumer: the range is a consumer's (a Concatenate's, which writes it while
            training); while training the tensor passes unquantized, so that the consumer's
            range sees it whole.
        bits: 8 (int8) or 16 (int16, TFLite's 16x8 scheme).
    """

    def __init__(
        self,
        ema_decay: float = 0.99,
        fixed_range: Optional[Sequence[float]] = None,
        follows_consumer: bool = False,
        bits: int = 8,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if bits not in ACTIVATION_BITS:
            raise ValueError(f"activation bits must be one of {ACTIVATION_BITS}, got {bits}")
        self.bits = bits
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
        record = _RECORDER.get()
        if record is not None and self.fixed_range is None:
            record(self, inputs)
            return inputs
        if training and self.follows_consumer:
            return inputs
        if training and self.fixed_range is None and not _FROZEN.get():
            batch_min, batch_max = global_min_max(ops.min(inputs), ops.max(inputs))
            batch_min = ops.minimum(batch_min, 0.0)
            batch_max = ops.maximum(batch_max, batch_min + MIN_RANGE)
            is_set = ops.greater(self.range_max, self.range_min)
            decay = ops.where(is_set, self.ema_decay, 0.0)
            self.range_min.assign(decay * self.range_min + (1.0 - decay) * batch_min)
            self.range_max.assign(decay * self.range_max + (1.0 - decay) * batch_max)
        return self.quantized(inputs)

    def quantized(self, x):
        """`x` fake-quantized on the current range (no update)."""
        if self.bits == 8:
            return fake_quant_range(x, self.range_min, self.range_max)
        limit = self.symmetric_limit()
        return keras.quantizers.fake_quant_with_min_max_vars(
            x, -limit, limit, num_bits=16, narrow_range=True)

    def symmetric_limit(self):
        return ops.maximum(-self.range_min, self.range_max)

    def scale(self, exact: bool = False):
        """The scale of this tensor, computed as the converter does, in double, then
        stored as float32 (`exact`: not rounded to float32): (max - min) / 255 at 8 bits
        (nudging keeps it), r / 32767 at 16."""
        if self.bits == 16:
            scale = wide(self.symmetric_limit()) / 32767.0
        else:
            scale = (wide(self.range_max) - wide(self.range_min)) / 255.0
        return scale if exact else ops.cast(scale, "float32")

    def zero_point(self):
        """The zero point after TensorFlow's nudging (0 is exactly representable); 0 at 16 bits."""
        if self.bits == 16:
            return ops.zeros(())
        nudged = ops.clip(ops.round(-self.range_min / self.scale()), 0.0, 255.0)
        return nudged - 128.0

    def get_config(self):
        config = super().get_config()
        config.update(ema_decay=self.ema_decay, fixed_range=self.fixed_range,
                      follows_consumer=self.follows_consumer, bits=self.bits)
        return config


class OwnOutputRange:
    """Mixin (put it first) for a layer whose output has a learned range of its own, held
    by the sublayer `output_quant` (int8, or int16 with `activation_bits=16`), or of a
    fixed `output_range` (low-bit activations)."""

    def __init__(self, *args, ema_decay: float = 0.99, activation_bits: int = 8,
                 output_range: Optional[Sequence[float]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ema_decay, self.activation_bits = ema_decay, activation_bits
        self.output_range = None if output_range is None else tuple(output_range)
        self.output_quant = FakeQuant(ema_decay, fixed_range=self.output_range,
                                      bits=activation_bits, name="output_quant")

    def get_config(self):
        return {**super().get_config(), "ema_decay": self.ema_decay,
                "activation_bits": self.activation_bits, "output_range": self.output_range}
