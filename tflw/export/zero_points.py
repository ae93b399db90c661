"""One zero point for a per-channel tensor whose zero points are all equal: flash that
TFLite-Micro never needs.

The converter stores a per-channel tensor's zero points as int64, one per channel, and a
weight's (and its bias's) are all 0: 8 bytes per channel and tensor, measured 19 KB of a
189 KB four-bit ResNet-20. TFLite-Micro's allocator reads a single zero point as every
channel's ("a space-saving optimization", micro_allocator.cc) and allocates the same
arena either way; TensorFlow Lite's interpreter refuses it ("QuantizationParam has 1
zero_point values and 16 scale values"). So `lut_compress` applies it to the compressed
model only, which needs TFLite-Micro's DECODE anyway, and `model.tflite` stays standard.

```python
smaller = single_zero_points(compressed_bytes)
```
"""

from tflite_micro.tensorflow.lite.micro.compression import model_editor

from tflw.export.flatbuffer_edit import edited


def single_zero_points(model_bytes: bytes) -> bytes:
    """`model_bytes` with each per-channel zero-point vector of one repeated value cut to
    that value."""
    return edited(model_bytes, _collapse)


def _collapse(model: model_editor.Model) -> bool:
    changed = False
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            quantization = tensor.quantization
            zeros = None if quantization is None else quantization.zero_points
            if isinstance(zeros, list) and len(zeros) > 1 and len(set(zeros)) == 1:
                quantization.zero_points = [zeros[0]]
                changed = True
    return changed
