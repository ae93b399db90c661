"""Edit a `.tflite` flatbuffer with TFLite-Micro's own model editor, keeping its alignment.

```python
model_bytes = edited(model_bytes, edit)   # edit(model) changes it in place, says if it did
```
"""

import os
import tempfile
from typing import Callable

from tflite_micro.tensorflow.lite.micro.compression import model_editor
from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper


def edited(model_bytes: bytes, edit: Callable[[model_editor.Model], bool]) -> bytes:
    """`model_bytes` after `edit` (which changes the model in place and says whether it
    changed anything), rebuilt and aligned; the same bytes when nothing changed."""
    model = model_editor.read(model_bytes)
    if not edit(model):
        return model_bytes
    _share_empty_buffer(model)
    # read() keeps every buffer, metadata's too, and build() writes metadata anew: without
    # the pruning each edit would carry a second copy of the metadata (about 500 B).
    model_editor.prune_buffers(model)
    return _aligned(bytes(model.build()))


def _share_empty_buffer(model: model_editor.Model) -> None:
    """Points every tensor without data at buffer 0, the schema's empty sentinel.

    The converter gives each activation an empty buffer of its own: 8 B of flash apiece
    (the buffer table and its slot in the list), which TFLite-Micro never reads.
    """
    for tensor in model_editor.iter_tensors(model):
        if tensor.buffer is not None and not tensor.buffer.data and not tensor.is_variable:
            tensor.buffer = None


def _aligned(model_bytes: bytes) -> bytes:
    """Repacked by TFLite-Micro's aligner, as its compression tool does: Python's
    flatbuffers ignores the schema's `force_align`, and an int32 bias read unaligned
    faults on a Cortex-M0+."""
    with tempfile.TemporaryDirectory(prefix="tflw-align-") as folder:
        source, target = os.path.join(folder, "in.tflite"), os.path.join(folder, "out.tflite")
        with open(source, "wb") as file:
            file.write(model_bytes)
        tflite_flatbuffer_align_wrapper.align_tflite_model(source, target)
        with open(target, "rb") as file:
            return file.read()
