"""Checks run before conversion and before the TFLite-Micro interpreter.

Each turns what would be a converter stack trace, a silently wrong model or an
interpreter abort into a `tflw` error that names the variable, input, tensor or op:

```python
check_model(model)                 # static input shapes, finite weights
check_flatbuffer(info)             # TFLite-Micro kernels exist, scales are usable
```
"""

import numpy as np

from tflw.errors import (
    DegenerateQuantizationError,
    DynamicShapeError,
    NonFiniteError,
    UnsupportedOpError,
)
from tflw.export.firmware import RESOLVER_METHODS
from tflw.export.flatbuffer import FlatbufferInfo


def check_model(model) -> None:
    """Static input shapes (batch aside) and finite weights."""
    for tensor in model.inputs:
        if any(size is None for size in tuple(tensor.shape)[1:]):
            raise DynamicShapeError(
                f"model input '{tensor.name}' has shape {tuple(tensor.shape)}: TFLite-Micro needs "
                "every size but the batch fixed. Build the model with keras.Input(shape=(...)) "
                "of fixed sizes (the size you will feed on the device)."
            )
    for variable in model.weights:
        values = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            count = int(np.size(values) - np.isfinite(values).sum())
            path = getattr(variable, "path", variable.name)
            raise NonFiniteError(
                f"weight '{path}' holds {count} NaN/Inf value(s): training diverged or the "
                "weights were loaded wrongly. Retrain with a lower learning rate or reload them."
            )


def check_flatbuffer(info: FlatbufferInfo) -> None:
    """Every op has a TFLite-Micro kernel, every quantized tensor a usable scale."""
    for op in info.ops:
        if op.name not in RESOLVER_METHODS:
            kind = "custom op" if op.custom else "op"
            raise UnsupportedOpError(
                f"{kind} {op.name} (version {op.version}) has no TFLite-Micro kernel: replace "
                "the layer that produces it (see report.json's ops for the full list)."
            )
    if info.degenerate_tensors:
        shown = ", ".join(info.degenerate_tensors[:3])
        raise DegenerateQuantizationError(
            f"tensor(s) {shown} have a zero or non-finite quantization scale: the activation "
            "feeding them is constant (e.g. a dead ReLU or an all-zero channel) or its range "
            "was never calibrated. Calibrate on real data, or remove the dead layer."
        )
    for tensor, beta_scale in info.softmax_inputs:
        # TFLite-Micro's int8 SOFTMAX (PreprocessSoftmaxScaling) needs beta * scale * 2**26 > 1
        # (26 = 31 - kScaledDiffIntegerBits) and aborts the process otherwise.
        if beta_scale * 2.0**26 <= 1.0:
            raise DegenerateQuantizationError(
                f"SOFTMAX input '{tensor}' has scale {beta_scale:.3g}: TFLite-Micro's int8 "
                f"softmax needs a scale above {2.0**-26:.3g} and aborts below it. The logits "
                "span almost nothing (an untrained model, or activations that vanish); train "
                "the model, or calibrate on data that gives it logits of real size."
            )
