"""Whether the model is being traced for the TFLite converter.

A few tflw layers compute, next to the graph the converter sees, a correction that makes
their Keras output bit-exact with a TFLite-Micro kernel (see
`tflw.quantization.pooling`). That correction is float arithmetic the converter must not
see, so export traces the model inside `for_conversion()` and the layers leave it out.
"""

import contextlib
import contextvars
from typing import Iterator

_TRACING = contextvars.ContextVar("tflw_tracing_for_conversion", default=False)


@contextlib.contextmanager
def for_conversion() -> Iterator[None]:
    token = _TRACING.set(True)
    try:
        yield
    finally:
        _TRACING.reset(token)


def tracing_for_conversion() -> bool:
    return _TRACING.get()
