"""The Arduino sketch: resolver, arena and I/O quantization taken from the flatbuffer.

```python
files = arduino_sketch(model_bytes, name="mnist_cnn", arena_bytes=21504,
                       sample_input=x_test[0], expected_class=7)
```
"""

import json
from pathlib import Path
from typing import Optional

import numpy as np

from tflw import __version__
from tflw.errors import ConversionError
from tflw.export.c_array import ARRAY_NAME
from tflw.export.flatbuffer import FlatbufferInfo
from tflw.export.templates import render

# The host interpreter's reference kernels and the 32-bit MCU build differ a little in what
# they allocate (optimized kernels such as CMSIS-NN add scratch buffers): keep a margin.
ARENA_MARGIN = 0.10
CHIRALE_VERSION = "2.0.0"
ARDUINO_EXAMPLES_VERSION = "2.4.0-ALPHA"
VALUES_PER_LINE = 8

# BuiltinOperator name -> MicroMutableOpResolver method, read from TFLite-Micro's
# micro_mutable_op_resolver.h (Aug 2026).
RESOLVER_METHODS = json.loads((Path(__file__).parent / "tflm_resolver_methods.json").read_text())


def arena_size(measured_bytes: int) -> int:
    """`kTensorArenaSize`: the measured arena plus `ARENA_MARGIN`, rounded up to 16."""
    padded = int(np.ceil(measured_bytes * (1 + ARENA_MARGIN)))
    return (padded + 15) // 16 * 16


def resolver_calls(info: FlatbufferInfo) -> list:
    """One `resolver.AddX();` line per op the model uses."""
    lines = []
    for op in info.ops:
        method = RESOLVER_METHODS.get(op.name)
        if method is None:
            raise ConversionError(
                f"op {op.name} has no MicroMutableOpResolver method in TFLite-Micro: the "
                "model cannot run on a microcontroller. Replace the layer that produces it."
            )
        lines.append(f"  resolver.{method}();  // {op.name} v{op.version}")
    return lines


def _compressed_note(compressed: Optional[dict]) -> str:
    """Comment lines on the LUT-compressed model, or nothing when there is none."""
    if compressed is None:
        return ""
    bits = sorted({tensor["bits"] for tensor in compressed["tensors"]})
    return (
        "//\n"
        f"// A smaller model is beside this one: model_compressed.tflite, "
        f"{compressed['flatbuffer_bytes']:,} bytes instead of\n"
        f"// {compressed['int8_flatbuffer_bytes']:,}, its weights LUT-compressed to {'/'.join(map(str, bits))} "
        "bits (TFLite-Micro's DECODE op). It needs\n"
        "// TFLite-Micro built from 2025 or later sources with USE_TFLM_COMPRESSION=1, one more\n"
        "// resolver slot for resolver.AddDecode(), and kTensorArenaSize = "
        f"{compressed['arena_size']} (DECODE expands\n"
        "// weights into the arena). Neither Arduino library above has DECODE yet, so this\n"
        "// sketch embeds the uncompressed model.\n"
    )


def _float_list(values: np.ndarray) -> str:
    flat = [f"{float(v):.8g}f" for v in np.asarray(values, np.float32).ravel()]
    rows = [", ".join(flat[i:i + VALUES_PER_LINE]) for i in range(0, len(flat), VALUES_PER_LINE)]
    return ",\n".join(f"    {row}" for row in rows)


def _io_type(dtype: str) -> dict:
    """The C type, TfLiteTensor data field and limits of int8 (or 16x8 int16) I/O."""
    bits = 16 if dtype == "INT16" else 8
    return {"io_type": f"int{bits}_t", "io_field": f"int{bits}" if bits == 8 else "i16",
            "io_min": -(2 ** (bits - 1)), "io_max": 2 ** (bits - 1) - 1}


def arduino_sketch(
    info: FlatbufferInfo,
    name: str,
    arena_bytes: int,
    sample_input: np.ndarray,
    expected_class: int,
    sample_description: str,
    compressed: Optional[dict] = None,
) -> str:
    """The `.ino` text for a model with flatbuffer facts `info`; `compressed` is export's
    report of a LUT-compressed twin, which the sketch describes but does not embed."""
    first_input, first_output = info.inputs[0], info.outputs[0]
    return render(
        "arduino/sketch.ino",
        model_name=name,
        tflw_version=__version__,
        chirale_version=CHIRALE_VERSION,
        arduino_examples_version=ARDUINO_EXAMPLES_VERSION,
        op_list_comment="\n".join(f"//   {op.name} v{op.version}" for op in info.ops),
        compressed_note=_compressed_note(compressed),
        arena_measured=arena_bytes,
        arena_margin_percent=int(ARENA_MARGIN * 100),
        arena_size=arena_size(arena_bytes),
        sample_description=sample_description,
        input_length=int(np.prod(first_input.shape)),
        sample_input=_float_list(sample_input),
        expected_class=int(expected_class),
        array_name=ARRAY_NAME,
        op_count=len(info.ops),
        resolver_calls="\n".join(resolver_calls(info)),
        **_io_type(first_input.dtype),
        input_scale=f"{first_input.scale:.9g}",
        input_zero_point=first_input.zero_point,
        output_scale=f"{first_output.scale:.9g}",
        output_zero_point=first_output.zero_point,
    )
