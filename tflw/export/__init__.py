"""Export: Keras model -> fully-integer `.tflite` verified in TFLite-Micro -> C array and
Arduino sketch. Never imports the training side.

```python
result = tflw.export.export(qat, "build/mnist", sample_inputs=x_test[:200])
check = tflw.export.verify(result.tflite_path, x_test[:500], reference=qat)
```
"""

from tflw.export.convert import to_tflite
from tflw.export.export import ExportResult, export
from tflw.export.flatbuffer import FlatbufferInfo, read_flatbuffer
from tflw.export.verify import VerifyResult, verify

__all__ = [
    "ExportResult",
    "FlatbufferInfo",
    "VerifyResult",
    "export",
    "read_flatbuffer",
    "to_tflite",
    "verify",
]
