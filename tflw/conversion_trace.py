"""Whether the model is being traced for the TFLite converter.

A few tflw layers compute, next to the graph the converter sees, a correction that makes
their Keras output bit-exact with a TFLite-Micro kernel (see
`tflw.quantization.pooling`). That correction is float arithmetic the converter must not
see, so export traces the model inside `for_conversion()` and the layers leave it out.
They also leave it out inside `float_rounding()`: statistics over many samples (the layer
inputs post-training quantization learns from) do not need the device's rare one-LSB
differences, and the correction costs about ten times the layer's own arithmetic.
"""

import contextlib
import contextvars
from typing import Any, Callable, ContextManager, Iterator

from keras import ops

_TRACING = contextvars.ContextVar("tflw_tracing_for_conversion", default=False)


@contextlib.contextmanager
def _raised(flag: contextvars.ContextVar) -> Iterator[None]:
    token = flag.set(True)
    try:
        yield
    finally:
        flag.reset(token)


def for_conversion() -> ContextManager[None]:
    return _raised(_TRACING)


def tracing_for_conversion() -> bool:
    return _TRACING.get()


_FLOAT_ROUNDING = contextvars.ContextVar("tflw_float_rounding", default=False)


def float_rounding() -> ContextManager[None]:
    return _raised(_FLOAT_ROUNDING)


def without_device_arithmetic() -> bool:
    """Layers skip their bit-exact correction: tracing for the converter, or float rounding."""
    return _TRACING.get() or _FLOAT_ROUNDING.get()


def traced_constant(compute: Callable[[], Any]):
    """`compute()`'s value as a constant of the graph being traced, computed eagerly from the
    layer's current variables (TensorFlow backend, which the converter runs on).

    The converter folds constant subgraphs only partly: measured, APoT's gather and select
    over a 512-element kernel were left in the graph and conversion failed. The low-bit
    weight schemes need such ops, so their result is handed over ready-made.
    """
    import tensorflow as tf

    with tf.init_scope():
        value = ops.convert_to_numpy(compute())
    return ops.convert_to_tensor(value)
