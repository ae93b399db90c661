"""16x8 depthwise biases widened to the int64 that TFLite-Micro's int16 kernel reads.

Measured (TF 2.21, tflite-micro 2026-10): a quantization-aware 16x8 model converts with an
int32 bias on DEPTHWISE_CONV_2D, but TFLite-Micro's int16 depthwise kernel reads its bias
as int64 without checking the type, so it runs and its outputs are garbage (up to 65,535
LSB off); TFLite's own interpreter refuses the model ("bias->type != kTfLiteInt64").
CONV_2D and FULLY_CONNECTED take an int32 bias at int16 and are left as they are.

```python
model_bytes = widen_int16_depthwise_biases(model_bytes)
```
"""

import numpy as np
from tflite_micro.tensorflow.lite.micro.compression import model_editor
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tflw.export.flatbuffer_edit import edited


def widen_int16_depthwise_biases(model_bytes: bytes) -> bytes:
    """`model_bytes` with each int16 DEPTHWISE_CONV_2D's int32 bias stored as int64 (the
    same values); unchanged when there is none."""
    return edited(model_bytes, _widen)


def _widen(model: model_editor.Model) -> bool:
    widened = False
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.opcode != schema.BuiltinOperator.DEPTHWISE_CONV_2D or len(op.inputs) < 3:
                continue
            data, bias = op.inputs[0], op.inputs[2]
            if (bias is None or data.dtype != schema.TensorType.INT16
                    or bias.dtype != schema.TensorType.INT32):
                continue
            # A buffer of its own: the converter may share one between equal constants.
            buffer = model_editor.Buffer(data=bias.array.astype(np.int64).tobytes())
            model.buffers.append(buffer)
            bias.buffer, bias.dtype = buffer, schema.TensorType.INT64
            widened = True
    return widened
