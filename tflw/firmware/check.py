"""`check_firmware`: build an exported sketch against a TFLite-Micro tree, run it on this
host or on qemu's Cortex-M4, and compare every output with the Python interpreter's.

```python
check = check_firmware("tflw-demo", tflm="~/tflite-micro", target="cortex-m4")
check.bit_exact, check.arena_used_bytes, check.flash["kernels"]
```
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from tflw.errors import FirmwareBuildError, ModelFileError
from tflw.export.c_array import ARRAY_NAME, COMPRESSED_ARRAY_NAME
from tflw.export.firmware import with_arena
from tflw.export.flatbuffer import read_flatbuffer
from tflw.export.templates import template_folder
from tflw.export.tflm import run_tflm
from tflw.firmware.flash_map import flash_by_part
from tflw.firmware.tensor_dump import op_differences
from tflw.firmware.tflm_build import TARGETS, TflmLibrary, build_tflm, check_tree
from tflw.model_data import flatbuffer_specs, model_arrays

QEMU = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
        "-serial", "none", "-semihosting-config", "enable=on,target=native"]
PER_OP_SAMPLES = 5
# TFLite-Micro's RecordedAllocationType, in its order: the persistent allocations by kind.
ALLOCATION_KINDS = ("eval tensors", "persistent tensors", "tensor quantization",
                    "persistent buffers", "variable buffers", "nodes and registrations",
                    "op data")
M4_LINK = ["-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs", "-Wl,--gc-sections",
           "-u", "_printf_float"]  # newlib-nano prints floats only when asked


@dataclass
class FirmwareCheck:
    """What the built sketch computed, against the Python TFLite-Micro interpreter.

    Attributes:
        target: "host" or "cortex-m4" (qemu mps2-an386).
        kernels: "reference" or "cmsis_nn".
        model: "int8" (the sketch's model) or "compressed" (the LUT-compressed twin).
        samples: inputs run.
        identical_samples: samples whose every output value equals the Python interpreter's.
        max_lsb_difference: largest |firmware - Python| over all output values, in LSBs.
        arena_used_bytes: `arena_used_bytes()` of the built firmware (its own word size).
        python_arena_bytes: the arena export measured in the Python interpreter.
        sketch_output: what the sketch's setup() and loop() printed for its own sample.
        flash: Cortex-M4 only: bytes of flash by part (model, sketch, TFLite-Micro runtime,
            kernels, DECODE, C library and start-up, total).
        arena_parts: the arena split: "planned" (tensors and scratch buffers, the same on
            every word size), "persistent" (the rest of `arena_used_bytes`), and the
            persistent allocations by kind as TFLite-Micro's recording allocator counts
            them (its own bookkeeping aside).
        op_differences: with CMSIS-NN and `per_op`: each op's output values that differ
            from the reference kernels' on the same target, and whether its inputs were
            identical (then that op's kernel is where a difference starts).
    """

    target: str
    kernels: str
    model: str
    samples: int
    identical_samples: int
    max_lsb_difference: int
    arena_used_bytes: int
    python_arena_bytes: int
    sketch_output: str
    flash: Optional[dict] = None
    op_differences: Optional[list] = None
    arena_parts: Optional[dict] = None

    @property
    def bit_exact(self) -> bool:
        return self.identical_samples == self.samples

    def as_dict(self) -> dict:
        return dict(vars(self), bit_exact=self.bit_exact)


def arena_parts(printed: str, arena_used: int) -> Optional[dict]:
    """The arena split from the firmware's `tflw-arena-parts` and `tflw-allocation` lines."""
    parts = re.search(r"tflw-arena-parts (\d+) (\d+)", printed)
    if parts is None:
        return None
    planned = int(parts.group(1))
    kinds = {ALLOCATION_KINDS[int(kind)]: int(size) for kind, size, _ in
             re.findall(r"tflw-allocation (\d+) (\d+) (\d+)", printed)
             if int(kind) < len(ALLOCATION_KINDS)}
    return {"planned": planned, "persistent": arena_used - planned, **kinds}


def compressed_sketch(sketch_text: str, lut: dict) -> str:
    """The sketch changed as its note says to run `model_compressed.tflite`: the compressed
    C array, one more resolver slot for AddDecode(), and the compressed model's arena."""
    slots = re.search(r"^tflite::MicroMutableOpResolver<(\d+)> resolver;", sketch_text, re.M)
    changes = [
        ('#include "model_data.h"', '#include "model_compressed_data.h"'),
        (f"GetModel({ARRAY_NAME})", f"GetModel({COMPRESSED_ARRAY_NAME})"),
        (slots.group(0), f"tflite::MicroMutableOpResolver<{int(slots.group(1)) + 1}> resolver;"),
        ("void setup() {\n", "void setup() {\n  resolver.AddDecode();\n"),
    ]
    for old, new in changes:
        sketch_text = sketch_text.replace(old, new)
    sizes = {"mcu": lut["arena_size"], "host": lut["arena_size_host"]}
    return with_arena(sketch_text, sizes, "The LUT-compressed model's arena, as tflw export "
                      "measured it (DECODE expands weights into the arena).")


def _sketch_for(model: str, sketch: Path, out_dir: Path, report: dict, scratch: Path) -> tuple:
    """(sketch, its model's C array source) to build for `model`."""
    if model == "int8":
        return sketch, sketch.parent / "model_data.cc"
    changed = scratch / sketch.name
    changed.write_text(compressed_sketch(sketch.read_text(), report["lut"]))
    return changed, out_dir / "model_compressed_data.cc"


def sketch_path(out_dir: Path) -> Path:
    """The one sketch export wrote into `out_dir` (`ModelFileError` if it is not there)."""
    sketches = sorted((out_dir / "arduino").glob("*/*.ino"))
    for needed in [out_dir / "model.tflite", out_dir / "report.json"]:
        if not needed.is_file():
            raise ModelFileError(f"'{needed}' is missing: give the folder tflw export wrote.")
    if len(sketches) != 1:
        raise ModelFileError(f"'{out_dir / 'arduino'}' holds {len(sketches)} sketches, not one: "
                             "give the folder tflw export wrote.")
    return sketches[0]


def _inputs(info, inputs, samples: int, names: Optional[list]) -> list:
    """Quantized inputs, one array per model input: `inputs` (float, sample axis first; a
    list or dict by name for several inputs; `names`: the Keras input names) or random
    codes (seed 0)."""
    if inputs is None:
        rng = np.random.default_rng(0)
        return [rng.integers(np.iinfo(t.numpy_dtype).min, np.iinfo(t.numpy_dtype).max + 1,
                             (samples, *t.shape[1:])).astype(t.numpy_dtype) for t in info.inputs]
    arrays = model_arrays(inputs, "inputs", flatbuffer_specs(info, names))
    return [tensor.quantize(array[:samples]) for tensor, array in zip(info.inputs, arrays)]


MODES = {"run": [], "dump": ["-DTFLW_DUMP_TENSORS"], "record": ["-DTFLW_RECORD_ARENA"]}


def _compile_and_link(library: TflmLibrary, sketch: Path, model_data: Path, work: Path,
                      mode: str) -> Path:
    target = library.target
    templates = template_folder()
    sources = [templates / "host/check_main.cc", model_data]
    array = ARRAY_NAME if model_data.stem == "model_data" else COMPRESSED_ARRAY_NAME
    flags = ["-std=c++17", target.optimization, *target.flags, "-DTF_LITE_STATIC_MEMORY",
             *library.defines, "-fno-rtti", "-fno-exceptions", "-ffunction-sections",
             "-fdata-sections", "-include", "Arduino.h", f"-I{templates / 'host'}",
             f"-I{sketch.parent}", f"-I{model_data.parent}",
             *(f"-isystem{d}" for d in library.include_dirs), f'-DTFLW_SKETCH="{sketch}"',
             f"-DTFLW_MODEL_ARRAY={array}", *MODES[mode]]
    binary = work / ("check.elf" if target.name == "cortex-m4" else "check")
    link = []
    if target.name == "cortex-m4":
        sources.append(templates / "qemu/startup.cc")
        link = [*M4_LINK, f"-T{templates / 'qemu/mps2_an386.ld'}", f"-Wl,-Map={work / 'check.map'}"]
    objects = []
    # one object per source, named for it: the linker map then tells model from sketch
    for source in sources:
        objects.append(work / f"{'model_data' if source == model_data else source.stem}.o")
        _run_compiler([target.cxx, *flags, "-x", "c++", "-c", str(source), "-o",
                       str(objects[-1])], sketch, target.name)
    _run_compiler([target.cxx, *target.flags, *map(str, objects), str(library.archive), *link,
                   "-o", str(binary)], sketch, target.name)
    return binary


def _run_compiler(command: list, sketch: Path, target: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise FirmwareBuildError(f"the sketch '{sketch}' did not build for {target} against "
                                 f"TFLite-Micro:\n{done.stderr[-3000:]}")


def _run(binary: Path, target: str, work: Path, timeout_s: float) -> str:
    command = [*QEMU, "-kernel", str(binary)] if target == "cortex-m4" else [str(binary)]
    try:
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        said = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else ""
        raise FirmwareBuildError(f"the firmware did not finish within {timeout_s:.0f} s on "
                                 f"{target} (a sketch that halts loops forever); it printed:\n"
                                 f"{said[-2000:]}") from error
    if "tflw-arena" not in done.stdout:
        raise FirmwareBuildError(f"the firmware failed on {target} (exit {done.returncode}):\n"
                                 f"{(done.stdout + done.stderr)[-2000:]}")
    return done.stdout


def _split_outputs(raw: bytes, info, samples: int) -> list:
    """The output file (each sample's outputs in order) as one array per output."""
    dtypes = [np.dtype(t.numpy_dtype) for t in info.outputs]
    sizes = [int(np.prod(t.shape[1:])) for t in info.outputs]
    per_sample = sum(d.itemsize * n for d, n in zip(dtypes, sizes))
    if len(raw) != per_sample * samples:
        raise FirmwareBuildError(f"the firmware wrote {len(raw)} output bytes, not "
                                 f"{per_sample * samples} for {samples} samples.")
    rows = np.frombuffer(raw, np.uint8).reshape(samples, per_sample)
    arrays, start = [], 0
    for dtype, size, tensor in zip(dtypes, sizes, info.outputs):
        width = dtype.itemsize * size
        arrays.append(rows[:, start:start + width].copy().view(dtype).reshape(samples, *tensor.shape[1:]))
        start += width
    return arrays


def _build_and_run(library: TflmLibrary, sketch: Path, model_data: Path, quantized: list,
                   timeout_s: float, mode: str = "run") -> tuple:
    """(what it printed, the outputs file, the linker map or "") of one firmware build of
    `MODES`; "dump" gives the tensor dump instead of the outputs file."""
    with tempfile.TemporaryDirectory(prefix="tflw-firmware-") as folder:
        work = Path(folder)
        binary = _compile_and_link(library, sketch, model_data, work, mode)
        with open(work / "tflw_inputs.bin", "wb") as stream:
            for sample in range(len(quantized[0])):
                for values in quantized:
                    stream.write(np.ascontiguousarray(values[sample]).tobytes())
        printed = _run(binary, library.target.name, work, timeout_s)
        result = work / ("tflw_tensors.bin" if mode == "dump" else "tflw_outputs.bin")
        map_file = work / "check.map"
        return printed, result.read_bytes(), map_file.read_text() if map_file.is_file() else ""


def check_firmware(
    out_dir: Union[str, os.PathLike],
    tflm: Union[str, os.PathLike],
    cmsis_nn: Union[str, os.PathLike, None] = None,
    target: str = "host",
    inputs: Optional[np.ndarray] = None,
    samples: int = 50,
    timeout_s: float = 300.0,
    per_op: bool = True,
    model: str = "int8",
) -> FirmwareCheck:
    """Build the sketch `tflw export` wrote into `out_dir` against the TFLite-Micro tree
    `tflm` (and CMSIS-NN's kernels where `cmsis_nn` names a CMSIS-NN tree), run it, and
    compare its outputs with the Python TFLite-Micro interpreter's, bit for bit.

    The firmware is the sketch itself (its setup() and one loop(), which prints how far
    its own sample is from the host's answer), then every input through the same
    interpreter. The library build is kept under TFLW_CACHE_DIR (default ~/.cache/tflw):
    the first call for a tree and target compiles it (minutes), later calls relink.

    Args:
        out_dir: the folder `tflw.export` wrote.
        tflm: a TFLite-Micro source tree whose third-party downloads are in place.
        cmsis_nn: a CMSIS-NN source tree, to build TFLite-Micro's cmsis_nn kernels.
        target: "host" (g++) or "cortex-m4" (arm-none-eabi-g++, run under
            qemu-system-arm's mps2-an386; also measures flash by part).
        inputs: float inputs, sample axis first: an array, or for several inputs a list
            with one array per input or a dict by input name (default: random codes,
            seed 0).
        samples: how many inputs to run.
        timeout_s: the firmware is stopped after this long.
        per_op: with `cmsis_nn`, also build the reference kernels for `target` and compare
            every op's output on the first `PER_OP_SAMPLES` inputs.
        model: "int8" runs the sketch as written; "compressed" runs it changed as its note
            says for `model_compressed.tflite` (the LUT model, with TFLite-Micro's DECODE).

    Returns:
        A `FirmwareCheck`.

    Raises:
        FirmwareBuildError: a missing tree, download or tool, or a build or run failure.
        ModelFileError: `out_dir` is not what export writes.

    Example:
        >>> check = tflw.firmware.check_firmware("tflw-demo", "~/tflite-micro", target="cortex-m4")
        >>> check.bit_exact, check.arena_used_bytes
        (True, 11412)
    """
    if target not in TARGETS:
        raise FirmwareBuildError(f"target '{target}': choose one of {', '.join(TARGETS)}.")
    if model not in ("int8", "compressed"):
        raise FirmwareBuildError(f"model '{model}': choose int8 or compressed.")
    out_dir = Path(out_dir)
    sketch = sketch_path(out_dir)
    model_file = out_dir / ("model_compressed.tflite" if model == "compressed" else "model.tflite")
    if model == "compressed" and not model_file.is_file():
        raise ModelFileError(f"'{out_dir}' holds no model_compressed.tflite: export with "
                             "compress='always' (tflw export --compress always).")
    model_bytes = model_file.read_bytes()
    info = read_flatbuffer(model_bytes)
    report = json.loads((out_dir / "report.json").read_text())
    names = [entry.get("keras_name") for entry in report["inputs"]]
    quantized = _inputs(info, inputs, samples, None if None in names else names)  # fails fast
    tflm = Path(tflm).expanduser()
    cmsis_nn = None if cmsis_nn is None else Path(cmsis_nn).expanduser()
    check_tree(tflm, cmsis_nn)  # before the Python interpreter's run, not after
    if target == "cortex-m4" and shutil.which("qemu-system-arm") is None:
        raise FirmwareBuildError("qemu-system-arm is not installed: the cortex-m4 check runs "
                                 "under it (Debian: apt-get install qemu-system-arm).")
    with tempfile.TemporaryDirectory(prefix="tflw-sketch-") as scratch:
        sketch, model_data = _sketch_for(model, sketch, out_dir, report, Path(scratch))
        count = len(quantized[0])
        expected = run_tflm(model_bytes, quantized, output_count=len(info.outputs)).outputs
        library = build_tflm(tflm, TARGETS[target], cmsis_nn)
        printed, raw, map_text = _build_and_run(library, sketch, model_data, quantized, timeout_s)
        recorded = _build_and_run(library, sketch, model_data, [q[:1] for q in quantized],
                                  timeout_s, "record")[0]
        got = _split_outputs(raw, info, count)
        flash = flash_by_part(map_text) if map_text else None
        ops = None
        if per_op and cmsis_nn is not None:
            reference = build_tflm(tflm, TARGETS[target], None)
            first = [q[:PER_OP_SAMPLES] for q in quantized]
            dumps = [_build_and_run(built, sketch, model_data, first, timeout_s, "dump")[1]
                     for built in (reference, library)]
            ops = op_differences(model_bytes, *dumps)
        differences = [np.abs(a.astype(np.int64) - b.astype(np.int64)).reshape(count, -1)
                       for a, b in zip(got, expected)]
        identical = np.all([d.max(axis=1) == 0 for d in differences], axis=0)
    arena_used = int(re.search(r"tflw-arena (\d+)", printed).group(1))
    return FirmwareCheck(
        target=target,
        kernels="reference" if cmsis_nn is None else "cmsis_nn",
        model=model,
        samples=count,
        identical_samples=int(identical.sum()),
        max_lsb_difference=int(max(d.max() for d in differences)),
        arena_used_bytes=arena_used,
        python_arena_bytes=int((report["lut"] if model == "compressed" else report)
                               ["arena_bytes_measured"]),
        sketch_output="\n".join(line for line in printed.splitlines()
                                if not line.startswith("tflw-")),
        flash=flash,
        op_differences=ops,
        arena_parts=arena_parts(recorded, arena_used),
    )
