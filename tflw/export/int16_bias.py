"""16x8 biases widened to the int64 that TFLite-Micro's int16 kernels read.

A quantization-aware 16x8 model converts with int32 biases (TF 2.21), but int16 kernels
read int64 without checking the type, so they run and their outputs are garbage:
- DEPTHWISE_CONV_2D, TFLite-Micro's reference kernel (up to 65,535 LSB off; TFLite's own
  interpreter refuses the model, "bias->type != kTfLiteInt64");
- FULLY_CONNECTED with CMSIS-NN (TFLite-Micro 2026-08; up to 41,960 LSB off, measured by
  `tflw firmware check`), and CONV_2D with Chirale_TensorFlowLite 2.0.0's CMSIS-NN (read
  from its sources).
The reference CONV_2D and FULLY_CONNECTED kernels take either width, so every int16
conv, depthwise and dense bias is stored as int64: one model for every kernel set.

```python
model_bytes = widen_int16_biases(model_bytes)
```
"""

import numpy as np
from tflite_micro.tensorflow.lite.micro.compression import model_editor
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tflw.export.flatbuffer_edit import edited


WIDENED_OPS = (schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D,
               schema.BuiltinOperator.FULLY_CONNECTED)


def widen_int16_biases(model_bytes: bytes) -> bytes:
    """`model_bytes` with the int32 bias of each int16 op of `WIDENED_OPS` stored as int64
    (the same values); unchanged when there is none."""
    return edited(model_bytes, _widen)


def _widen(model: model_editor.Model) -> bool:
    widened = False
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.opcode not in WIDENED_OPS or len(op.inputs) < 3:
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
