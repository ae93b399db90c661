"""The Arduino sketch: resolver, arena and I/O quantization taken from the flatbuffer.

```python
text = arduino_sketch(info, name="mnist_cnn", arena={"mcu": 20496, "host": 21504},
                      sample_inputs=[x_q[0]], sample_outputs=[y_q[0]],
                      sample_description="a test digit")
```
"""

import json
import re
import textwrap
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from tflw import __version__
from tflw.errors import ConversionError
from tflw.export.c_array import ARRAY_NAME
from tflw.export.c_literals import c_float, c_int_array
from tflw.export.flatbuffer import FlatbufferInfo
from tflw.export.templates import render

# Without the host's recording, a 32-bit MCU gets the host's arena plus this margin.
ARENA_MARGIN = 0.10
# The 32-bit estimate is within 1 % of every Cortex-M4 build measured, 0.1 % below at most
# (benchmarks/results/arena_32bit.json): the sketch keeps 1 % above it.
ESTIMATE_MARGIN = 0.01
CHIRALE_VERSION = "2.0.0"
ARDUINO_EXAMPLES_VERSION = "2.4.0-ALPHA"
VALUES_PER_LINE = 8

# BuiltinOperator name -> MicroMutableOpResolver method, read from TFLite-Micro's
# micro_mutable_op_resolver.h (Aug 2026).
RESOLVER_METHODS = json.loads((Path(__file__).parent / "tflm_resolver_methods.json").read_text())
# What each Arduino port of TFLite-Micro lacks, read from its sources (the file says how).
ARDUINO_LIBRARIES = json.loads(
    (Path(__file__).parent / "arduino_libraries.json").read_text())["libraries"]


def aligned_16(size: int) -> int:
    """`size` rounded up to a multiple of 16 (TFLite-Micro's arena alignment)."""
    return (size + 15) // 16 * 16


def arena_size(measured_bytes: int) -> int:
    """The host's measured arena plus `ARENA_MARGIN`, rounded up to 16: the fallback for a
    32-bit MCU where the host's recording is missing."""
    return aligned_16(int(np.ceil(measured_bytes * (1 + ARENA_MARGIN))))


def arena_sizes(host_bytes: int, arena_32bit: Optional[dict] = None,
                cmsis_nn: Optional[dict] = None) -> dict:
    """`kTensorArenaSize` for a 32-bit MCU ("mcu") and for a 64-bit host ("host", where
    `tflw firmware check --target host` runs the same sketch), rounded up to 16.

    The MCU's is the 32-bit estimate (`tflw.export.arena_32bit`) plus `ESTIMATE_MARGIN`
    plus what CMSIS-NN's kernels add (`tflw.export.cmsis_nn_arena.cmsis_nn_margin`); the
    host's is what its interpreter measured.
    """
    if arena_32bit is None:
        return {"mcu": arena_size(host_bytes), "host": aligned_16(host_bytes)}
    extra = 0 if cmsis_nn is None else cmsis_nn["margin_bytes"]
    estimate = arena_32bit["min_arena_bytes"]
    return {"mcu": aligned_16(int(np.ceil(estimate * (1 + ESTIMATE_MARGIN))) + extra),
            "host": aligned_16(host_bytes)}


_ARENA_LINE = re.compile(r"constexpr int kTensorArenaSize = sizeof\(void\*\) > 4 \? (\d+) : (\d+);")


def arena_line(mcu: int, host: int) -> str:
    """The sketch's `kTensorArenaSize` line: a 64-bit host's pointers take more arena."""
    return f"constexpr int kTensorArenaSize = sizeof(void*) > 4 ? {host} : {mcu};"


def sketch_arena_sizes(sketch_text: str) -> dict:
    """{"mcu", "host"}: the `kTensorArenaSize` of a sketch tflw wrote."""
    found = _ARENA_LINE.search(sketch_text)
    if found is None:
        raise ConversionError("the sketch has no `constexpr int kTensorArenaSize` line tflw "
                              "wrote: export it again.")
    return {"host": int(found.group(1)), "mcu": int(found.group(2))}


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


def _compressed_note(compressed: Optional[dict], op_count: int) -> str:
    """Comment lines on the LUT-compressed model written beside this one, or nothing."""
    if compressed is None or not compressed["tensors"]:
        return ""
    if not compressed["written"]:
        return ("//\n"
                f"// LUT-compressing the low-bit weights would save {compressed['flash_saved_bytes']:,} "
                "bytes, less than the\n"
                f"// {compressed['decode_code_bytes']:,} bytes of TFLite-Micro's DECODE code, "
                "so no compressed model is written\n// (tflw export --compress always writes it).\n")
    bits = sorted({tensor["bits"] for tensor in compressed["tensors"]})
    return (
        "//\n"
        f"// A smaller model is beside this one: model_compressed.tflite, "
        f"{compressed['flatbuffer_bytes']:,} bytes instead of\n"
        f"// {compressed['int8_flatbuffer_bytes']:,}, its weights LUT-compressed to "
        f"{'/'.join(map(str, bits))} bits (TFLite-Micro's DECODE op), as a C array in\n"
        "// model_compressed_data.h/.cc (g_model_compressed_data). DECODE's code adds about "
        f"{compressed['decode_code_bytes']:,} bytes\n"
        "// of flash; it runs on TFLite-Micro sources from 2025 or later, whose\n"
        "// MicroMutableOpResolver has AddDecode(). To use it: include model_compressed_data.h,\n"
        f"// pass g_model_compressed_data to GetModel, make the resolver "
        f"MicroMutableOpResolver<{op_count + 1}>, add\n"
        "// resolver.AddDecode(), and set kTensorArenaSize = "
        f"{compressed['arena_size']} (DECODE expands weights into the arena).\n"
    )


def library_notes(info: FlatbufferInfo) -> list:
    """What each Arduino library `ARDUINO_LIBRARIES` lists cannot run of this model: one
    sentence per library with a problem."""
    methods = {RESOLVER_METHODS.get(op.name) for op in info.ops}
    int16 = info.inputs[0].dtype == "INT16"
    notes = []
    for library in ARDUINO_LIBRARIES:
        missing = sorted(methods & set(library["missing_resolver_methods"]))
        broken = sorted(op.name for op in info.ops if op.name in library["int16_problems"]) if int16 else []
        problems = ([f"it has no {', '.join(missing)} (the sketch does not compile there)"]
                    if missing else [])
        problems += [f"int16 {op}: {library['int16_problems'][op]}" for op in broken]
        if problems:
            notes.append(f"{library['name']} {library['version']} cannot run this model: "
                         + "; ".join(problems) + ".")
    return notes


def _library_comment(notes: list) -> str:
    if not notes:
        return ""
    lines = ["//", "// Measured limits of the Arduino libraries above (tflw export warned of these):"]
    for note in notes:
        lines += [f"//   {line}" for line in textwrap.wrap(note, 88)]
    return "\n".join(lines) + "\n"


def _c_type(dtype: str) -> tuple:
    """The C type and TfLiteTensor data field of an int8 (or 16x8 int16) tensor."""
    return ("int16_t", "i16") if dtype == "INT16" else ("int8_t", "int8")


def _io_type(dtype: str) -> dict:
    """The C type, TfLiteTensor data field and limits of the model's input."""
    limits = np.iinfo(np.int16 if dtype == "INT16" else np.int8)
    io_type, io_field = _c_type(dtype)
    return {"io_type": io_type, "io_field": io_field, "io_min": limits.min, "io_max": limits.max}


def _c_arrays(kind: str, c_type: str, tensors: Sequence, values: Sequence[np.ndarray],
              role: str) -> str:
    """C arrays of one sample's `values` per tensor, with the count, pointer and length
    tables the sketch's loop reads (`kind`: "Input" or "Output")."""
    blocks, names = [], []
    for index, (tensor, value) in enumerate(zip(tensors, values)):
        name = f"k{role}{kind}{index}"
        names.append(name)
        blocks.append(f"// {kind.lower()} {index} '{tensor.name}': {c_type}, scale "
                      f"{c_float(tensor.scale)}, zero point {tensor.zero_point}\n"
                      f"const {c_type} {name}[{int(np.prod(tensor.shape))}] = {{\n"
                      f"{c_int_array(value, VALUES_PER_LINE)}\n}};")
    lengths = ", ".join(str(int(np.prod(t.shape))) for t in tensors)
    return "\n".join([
        *blocks,
        f"constexpr int k{kind}Count = {len(tensors)};",
        f"const {c_type}* const k{role}{kind}s[k{kind}Count] = {{{', '.join(names)}}};",
        f"const int k{kind}Lengths[k{kind}Count] = {{{lengths}}};"])


def arena_comment(sizes: dict, arena_32bit: Optional[dict], cmsis_nn: Optional[dict],
                  plan: Optional[dict] = None) -> str:
    """Where `kTensorArenaSize` comes from, as the text of C++ comment lines; `sizes` from
    `arena_sizes`, `plan` export's report["arena"]."""
    planned = ""
    if plan is not None and plan["arena_bytes"] < plan["tflm_default_arena_bytes"]:
        splits = len(plan["channel_splits"])
        planned = (" The model carries tflw's offline memory plan (TFLite-Micro reads it from "
                   "the flatbuffer's metadata)"
                   f"{f' and {splits} channel split(s) of the peak' if splits else ''}, "
                   f"without which TFLite-Micro would need {plan['tflm_default_arena_bytes']} "
                   "bytes on the host.")
    if arena_32bit is None:
        mcu = (f"On a 32-bit MCU: the host's arena plus {int(ARENA_MARGIN * 100)} %, "
               "rounded up to 16.")
    else:
        planning = arena_32bit["min_arena_bytes"] - arena_32bit["arena_bytes"]
        mcu = (f"On a 32-bit MCU: {arena_32bit['non_persistent_bytes']} bytes of tensors and "
               f"scratch and {arena_32bit['persistent_bytes']} persistent with the reference "
               "kernels (estimated from the host's recording)"
               + (f", {planning} more while AllocateTensors() plans them" if planning else "")
               + f", plus {ESTIMATE_MARGIN:.0%} for the estimate")
        if cmsis_nn is not None and cmsis_nn["margin_bytes"]:
            scratch = [op for op in cmsis_nn["ops"] if op["scratch_bytes"]]
            largest = max(scratch, key=lambda op: op["scratch_bytes"], default=None)
            named = ("" if largest is None else
                     f"; its largest scratch buffer is {largest['op']} #{largest['index']}'s "
                     f"{largest['scratch_bytes']} bytes")
            mcu += (f", plus {cmsis_nn['margin_bytes']} for CMSIS-NN's kernels "
                    f"({cmsis_nn['scratch_growth_bytes']} of scratch beyond the tensors' "
                    f"plan, {cmsis_nn['persistent_bytes']} of per-op state{named})")
        mcu += ", rounded up to 16."
    return (f"{mcu} On a 64-bit host: the {sizes['host']} bytes its TFLite-Micro interpreter "
            "measured. Other optimized kernels (ESP-NN on an ESP32) may ask for other "
            "scratch: `tflw firmware check OUT_DIR --tflm TREE --target cortex-m4 "
            f"--write-arena` measures a build and writes its arena here.{planned}")


def with_arena(sketch_text: str, sizes: dict, comment: str) -> str:
    """`sketch_text` with `kTensorArenaSize` set to `sizes` ({"mcu", "host"}, each rounded
    up to 16) and the comment lines above it replaced by `comment`."""
    line = arena_line(aligned_16(sizes["mcu"]), aligned_16(sizes["host"]))
    lines = "\n".join(f"// {text}" for text in textwrap.wrap(comment, 88))
    changed, count = re.subn(r"(?:// [^\n]*\n)+" + _ARENA_LINE.pattern,
                             lambda _: f"{lines}\n{line}", sketch_text)
    if count != 1:
        raise ConversionError("the sketch has no `constexpr int kTensorArenaSize` line tflw "
                              "wrote: export it again, then record the arena.")
    return changed


def arduino_sketch(
    info: FlatbufferInfo,
    name: str,
    arena: dict,
    sample_inputs: Sequence[np.ndarray],
    sample_outputs: Sequence[np.ndarray],
    sample_description: str,
    compressed: Optional[dict] = None,
    notes: Sequence[str] = (),
    arena_plan: Optional[dict] = None,
    arena_32bit: Optional[dict] = None,
    cmsis_nn: Optional[dict] = None,
) -> str:
    """The `.ino` text for a model with flatbuffer facts `info`.

    Args:
        info: the flatbuffer's facts.
        name: the sketch's name.
        arena: `kTensorArenaSize` for a 32-bit MCU and a 64-bit host (`arena_sizes`).
        sample_inputs: one sample per model input, as the model takes it (int8/int16 codes).
        sample_outputs: the host interpreter's output codes for it, one per output.
        sample_description: where the sample came from, for a comment.
        compressed: export's report of a LUT-compressed twin, which the sketch describes.
        notes: `library_notes(info)`, which export also gives as warnings.
        arena_plan: export's report of the arena plan (`tflw.export.arena_plan`).
        arena_32bit: the arena a 32-bit MCU needs (`tflw.export.arena_32bit`).
        cmsis_nn: what CMSIS-NN's kernels add (`tflw.export.cmsis_nn_arena`).
    """
    first_input, first_output = info.inputs[0], info.outputs[0]
    output_type, output_field = _c_type(first_output.dtype)
    io = _io_type(first_input.dtype)
    return render(
        "arduino/sketch.ino",
        model_name=name,
        tflw_version=__version__,
        chirale_version=CHIRALE_VERSION,
        arduino_examples_version=ARDUINO_EXAMPLES_VERSION,
        op_list_comment="\n".join(f"//   {op.name} v{op.version}" for op in info.ops),
        library_notes=_library_comment(notes),
        compressed_note=_compressed_note(compressed, len(info.ops)),
        arena_comment="\n".join(f"// {line}" for line in textwrap.wrap(
            arena_comment(arena, arena_32bit, cmsis_nn, arena_plan), 88)),
        arena_line=arena_line(arena["mcu"], arena["host"]),
        sample_description=sample_description,
        sample_inputs=_c_arrays("Input", io["io_type"], info.inputs, sample_inputs, "Sample"),
        expected_outputs=_c_arrays("Output", output_type, info.outputs, sample_outputs,
                                   "Expected"),
        output_type=output_type,
        output_field=output_field,
        expected_class=int(np.argmax(sample_outputs[0])),
        array_name=ARRAY_NAME,
        op_count=len(info.ops),
        resolver_calls="\n".join(resolver_calls(info)),
        **io,
    )
