"""Tensor names left out of the flatbuffer that ships: flash the board never reads.

The converter names every tensor after the Keras ops that made it
("tflw_demo_cnn_1/conv2d_2_1/convolution;..."): measured, 1.7 KB of a 19.6 KB four-bit
model, 1.2 KB of a 29 KB int8 one. TFLite-Micro finds tensors by index, never by name.
`export` strips them (as TensorFlow's `flatbuffer_utils.strip_strings` does, but through
TFLite-Micro's aligned model editor) after reading the op-to-layer map it reports.

```python
shipped = without_names(model_bytes)
```
"""

from tflite_micro.tensorflow.lite.micro.compression import model_editor

from tflw.export.flatbuffer_edit import edited


def without_names(model_bytes: bytes) -> bytes:
    """`model_bytes` with no tensor or subgraph names and no description."""
    return edited(model_bytes, _strip)


def _strip(model: model_editor.Model) -> bool:
    named = bool(model.description)
    model.description = None
    for subgraph in model.subgraphs:
        for item in [subgraph, *subgraph.tensors]:
            named = named or bool(item.name)
            item.name = None
    return named
