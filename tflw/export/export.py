"""`export`: model -> verified int8 flatbuffer, C array, Arduino sketch and report, atomically.

```python
result = export(qat_model, "build/mnist", sample_inputs=x_test[:200])
print(result.flatbuffer_bytes, result.arena_size, result.verification.max_lsb_difference)
```
"""

import gzip
import json
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TYPE_CHECKING, Union

import numpy as np

from tflw import __version__, boards
from tflw.export.board_fit import check_fits, check_weights_fit
from tflw.errors import (ArduinoLibraryWarning, ConversionError,
                         OutputDirectoryError)
from tflw.export.c_array import COMPRESSED_ARRAY_NAME, c_array_files
from tflw.export.c_names import c_identifier
from tflw.export.convert import is_quantization_aware, to_tflite
from tflw.export.dense_granularity import CHOICES as DENSE_CHOICES, convert_float_model, has_dense
from tflw.model_kind import is_tf_keras_model
from tflw.model_file import load_model
from tflw.export.arena_plan import smaller_arena
from tflw.export.cmsis_nn_arena import cmsis_nn_margin
from tflw.export.firmware import RESOLVER_METHODS, arduino_sketch, arena_sizes, library_notes
from tflw.export.flatbuffer import FlatbufferInfo, read_flatbuffer
from tflw.export.lut import DECODE_CODE_BYTES, lut_compress
from tflw.export.names import without_names
from tflw.export.platformio import platformio_files
from tflw.export.preflight import check_flatbuffer, check_model
from tflw.export.verify import VerifyResult, same_outputs, verify
from tflw.model_data import ModelData, first_samples, model_arrays

VERIFY_SAMPLES = 200
COMPRESS_CHOICES = ("auto", "always", "never")
# compress="auto" keeps the compressed model's arena within this fraction of the int8 one's.
LUT_ARENA_TOLERANCE = 0.05

if TYPE_CHECKING:
    import keras


@dataclass
class ExportResult:
    """What `export` wrote and measured.

    Attributes:
        out_dir: the folder holding everything below.
        tflite_path: the fully-integer flatbuffer.
        sketch_path: the Arduino sketch (`arduino/<name>/<name>.ino`).
        flatbuffer_bytes: flash the model takes.
        arena_bytes: smallest tensor arena measured in the TFLite-Micro interpreter.
        arena_size: the sketch's `kTensorArenaSize` on a 32-bit MCU: the 32-bit estimate
            plus 1 % and what CMSIS-NN's kernels add (the host's is `report["arena_size_host"]`).
        info: ops, I/O quantization and parameter count read from the flatbuffer.
        verification: TFLite-Micro vs Keras on the sample inputs, when there were any.
        report: the content of `report.json`.
        compressed_path: `model_compressed.tflite`, the LUT-compressed flatbuffer, when
            some weights have few enough levels (low-bit QAT) for it to be smaller and
            `compress` asked for it (by default: when it pays for DECODE's code).
    """

    out_dir: Path
    tflite_path: Path
    sketch_path: Path
    flatbuffer_bytes: int
    arena_bytes: int
    arena_size: int
    info: FlatbufferInfo
    verification: Optional[VerifyResult]
    report: dict
    compressed_path: Optional[Path] = None


def _quantization_kind(model) -> str:
    if not is_quantization_aware(model):
        return "post-training int8 (representative data)"
    if is_tf_keras_model(model):
        return "QAT, tfmot (tf_keras)"
    return "tflw quantized layers (QAT, or tflw.ptq without training)"


def _sample_inputs(info: FlatbufferInfo, checked: Optional[list]) -> tuple:
    """Inputs for the TFLite-Micro run (one array per input), and whether they are real
    data to compare on; `checked`: the sample or representative data, checked."""
    if checked is not None:
        return first_samples(checked, VERIFY_SAMPLES), True
    # No data: one input at the real value 0, enough to measure the arena.
    return [np.zeros((1, *tensor.shape[1:]), np.float32) for tensor in info.inputs], False


def _report(name, model, info, model_bytes, verification, compared, sizes: dict) -> dict:
    return {
        "model": name,
        "tflw_version": __version__,
        "quantization": _quantization_kind(model),
        "flatbuffer_bytes": len(model_bytes),
        "arena_bytes_measured": verification.arena_bytes,
        "arena_size": sizes["mcu"],
        "arena_size_host": sizes["host"],
        "parameter_count": info.parameter_count,
        # Zeros save flash only once compressed: TFLite-Micro runs dense kernels.
        "gzip_bytes": len(gzip.compress(model_bytes, mtime=0)),
        "macs": info.macs,
        "layers": [
            {"op": op.name, "output": op.output, "macs": op.macs, "weights": op.weights,
             "sparsity": op.zero_weights / op.weights if op.weights else 0.0}
            for op in info.operators
        ],
        "ops": [
            {"name": op.name, "version": op.version,
             "resolver_method": RESOLVER_METHODS.get(op.name)}
            for op in info.ops
        ],
        # the Keras input names: the flatbuffer's are op names, or stripped
        "inputs": [vars(t) | {"shape": list(t.shape), "keras_name": str(k.name)}
                   for t, k in zip(info.inputs, model.inputs)],
        "outputs": [vars(t) | {"shape": list(t.shape)} for t in info.outputs],
        "verification": None if not compared else {
            "samples": int(len(verification.outputs[0])),
            "argmax_agreement": verification.argmax_agreement,
            "max_lsb_difference": verification.max_lsb_difference,
            "parity_within_1_lsb": verification.parity,
        },
    }


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"tflw: {message}", file=sys.stderr, flush=True)


def _checked_lut(named: bytes, shipped: bytes, inputs: np.ndarray, verification: VerifyResult,
                 ship: Callable[[bytes], bytes], compress: str, minimize_arena: bool):
    """The LUT-compressed twin of the `named` flatbuffer (as `ship` writes it, beside
    `shipped`), or None where `compress` says not to write it, and its report entry (None
    where nothing compresses); it must give the uncompressed model's outputs bit for bit
    in TFLite-Micro."""
    auto, keep = compress == "auto", ()
    while True:
        lut = None if compress == "never" else lut_compress(named, auto, keep)
        if lut is None or not lut.tensors:
            return None, None if lut is None else {
                "written": False, "tensors": [], "kept_int8_for_arena": list(lut.kept_for_arena),
                "why": "every low-bit tensor's decoded copy would raise the arena's peak, or "
                       f"DECODE's state for it the arena by over {LUT_ARENA_TOLERANCE:.0%} "
                       "(compress='always' compresses them anyway)"}
        compressed = ship(lut.model_bytes)
        run = verify(compressed, inputs)
        if not same_outputs(run, verification):
            raise ConversionError(
                "the LUT-compressed model's outputs differ from the int8 model's in "
                f"TFLite-Micro (tensors {[t.name for t in lut.tensors]}); export without "
                "low-bit weights and report this model to tflw.")
        arena_entry = None
        if minimize_arena:
            compressed, run, arena_entry = smaller_arena(compressed, inputs, run)
        if not auto or run.arena_bytes <= (1 + LUT_ARENA_TOLERANCE) * verification.arena_bytes:
            break
        # DECODE keeps state per compressed tensor: give up the one that saves least flash
        keep += (min(lut.tensors, key=lambda t: t.int8_bytes - t.lut_bytes).name,)
    saved = len(shipped) - len(compressed)
    sizes = arena_sizes(run.arena_bytes, run.arena_32bit, cmsis_nn_margin(compressed))
    # DECODE's own code is flash too: compression pays only when it saves more than that.
    pays = saved > DECODE_CODE_BYTES
    written = compress == "always" or pays
    return (compressed if written else None), {
        "flatbuffer_bytes": len(compressed),
        "int8_flatbuffer_bytes": len(shipped),
        "flash_saved_bytes": saved,
        "decode_code_bytes": DECODE_CODE_BYTES,
        "pays": pays,
        "written": written,
        "arena_bytes_measured": run.arena_bytes,
        "arena_size": sizes["mcu"],
        "arena_size_host": sizes["host"],
        "arena_increase_bytes": run.arena_bytes - verification.arena_bytes,
        "tensors": [vars(t) for t in lut.tensors],
        # Their decoded copies or DECODE's state for them would raise the arena.
        "kept_int8_for_arena": list(lut.kept_for_arena),
        "identical_outputs": True,
        "arena": arena_entry,
        # Read from their sources: neither Arduino port of TFLite-Micro has DECODE yet.
        "requires": "TFLite-Micro sources from 2025 or later (MicroMutableOpResolver::"
                    "AddDecode()); the Arduino sketch embeds the uncompressed model.tflite",
    }


def _board_report(board, info: FlatbufferInfo, verification: VerifyResult) -> dict:
    return {
        "key": board.key, "name": board.name,
        "model_flash_budget": board.model_flash_budget, "arena_budget": board.arena_budget,
        "latency_estimate_seconds": board.latency_seconds(info.macs),
        "latency_source": f"estimate, {board.cycles_per_mac} cycles/MAC: {board.speed_source}",
    }


def _write(folder: Path, files: dict) -> None:
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _staging_folder(out_dir: Path, overwrite: bool) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputDirectoryError(f"'{out_dir}' exists and is not a folder: pick another out_dir")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise OutputDirectoryError(
            f"'{out_dir}' already exists and is not empty: pass overwrite=True "
            "(tflw export --force) or pick another out_dir."
        )
    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tflw-", dir=parent))
    except OSError as error:
        raise OutputDirectoryError(
            f"cannot write into '{parent}' ({error.strerror}): choose a writable out_dir."
        ) from error


def export(
    model: Union["keras.Model", str, os.PathLike],
    out_dir: Union[str, os.PathLike],
    representative_data: Optional[ModelData] = None,
    sample_inputs: Optional[ModelData] = None,
    name: Optional[str] = None,
    overwrite: bool = False,
    board: Union[str, boards.Board, None] = None,
    progress: bool = False,
    strip_names: bool = True,
    compress: str = "auto",
    dense: str = "auto",
    minimize_arena: bool = True,
) -> ExportResult:
    """Convert, verify in TFLite-Micro, and write the firmware for `model`.

    Writes, into `out_dir` (all or nothing: files are staged beside it and moved in last):
    `model.tflite`, `model_data.h`/`model_data.cc` (the flatbuffer as a 16-byte-aligned C
    array), `arduino/<name>/<name>.ino` with its two model files, the same sketch as a
    PlatformIO project (`platformio/<name>/`), and `report.json`.

    Args:
        model: a tflw/tfmot quantization-aware model, a float Keras model (then
            `representative_data` is required), or a path to a `.keras` file.
        out_dir: output folder; must not exist or be empty unless `overwrite`.
        representative_data: typical float inputs for post-training quantization: an
            array for a one-input model; for several inputs a list with one array per
            input (in `model.inputs` order) or a dict by input name, as Keras's `fit`
            takes them; or an iterable of such batches (a generator, a tf.data.Dataset).
        sample_inputs: float inputs to verify on, in the same forms (default:
            `representative_data`); the first sample becomes the sketch's example input.
        name: name of the sketch and C identifiers (default: the model's name).
        overwrite: replace an existing non-empty `out_dir`.
        board: a `tflw.boards` key (e.g. "nano33ble") or `Board`: fail with
            `ModelTooLargeError` if the model or its arena exceeds the board's budget,
            and record the budget and a latency estimate in the report.
        progress: say each step on stderr and show a bar while TFLite-Micro runs the
            samples (the CLI does; library calls stay quiet by default).
        strip_names: leave the tensor names out of the flatbuffers written (flash the
            board never reads: 1-2 KB on small models); `report.json` still names each
            op's layer. False keeps them, e.g. to look at model.tflite in Netron.
        compress: "auto" writes `model_compressed.tflite` (low-bit weights
            LUT-compressed) only when it saves more flash than TFLite-Micro's DECODE code
            adds (`DECODE_CODE_BYTES`, measured on a Cortex-M4), and leaves int8 every
            tensor whose decoded copy (DECODE expands it into the arena before its op
            runs) would raise the arena's peak, then, while DECODE's state per tensor
            keeps the arena over `LUT_ARENA_TOLERANCE` above the int8 model's, the
            tensor that saves the least flash; "always" compresses every low-bit tensor
            and writes it (the report's "arena_increase_bytes" says what that costs in
            RAM), "never" skips it. The report's "lut" entry says what it saves either way.
        dense: a float model's fully-connected weights, "per-tensor" (one scale per
            layer) or "per-channel" (the converter's default: flash and arena per output
            channel), or "auto": both converted and run, per-channel kept only where it
            cuts the output error against the float model by 10 %
            (`tflw.export.dense_granularity`); the report's "dense" entry says which and
            why. QAT models carry their own (tflw's Dense layers are per-tensor).
        minimize_arena: write an offline memory plan into the flatbuffer where
            TFLite-Micro, measured, then needs a smaller arena (same outputs bit for bit;
            `tflw.export.memory_plan`); the report's "arena" entry gives both arenas and
            the lower bound of the model's schedule.

    Returns:
        An `ExportResult`.

    Raises:
        TflwError: a subclass, naming the layer, op or path at fault.

    Example:
        >>> result = tflw.export(qat, "build/mnist", sample_inputs=x_test[:200])
        >>> result.verification.parity
        True
    """
    if compress not in COMPRESS_CHOICES:
        raise ValueError(f"compress={compress!r}: choose one of {', '.join(COMPRESS_CHOICES)}.")
    if dense not in DENSE_CHOICES:
        raise ValueError(f"dense={dense!r}: choose one of {', '.join(DENSE_CHOICES)}.")
    model = load_model(model)
    board = None if board is None else boards.get(board)
    check_model(model)  # before the data: its errors first
    if sample_inputs is not None:
        sample_inputs = model_arrays(sample_inputs, "sample_inputs", model)
    if representative_data is not None:
        representative_data = model_arrays(representative_data, "representative_data", model)
    if board is not None:
        check_weights_fit(board, model)
    out_dir = Path(out_dir)
    staging = _staging_folder(out_dir, overwrite)
    try:
        _say(progress, f"converting '{model.name}' to a fully-integer flatbuffer "
                       f"({_quantization_kind(model)})")
        ship = without_names if strip_names else (lambda model_bytes: model_bytes)
        if is_quantization_aware(model) or representative_data is None:
            named, dense_report = to_tflite(model, representative_data), None
            if has_dense(model):  # tflw's QuantDense and tfmot's default scheme
                dense_report = {"chosen": "per-tensor",
                                "chosen_by": "the quantization-aware model's Dense layers"}
        else:
            choice_inputs = first_samples(sample_inputs if sample_inputs is not None
                                          else representative_data, VERIFY_SAMPLES)
            named, dense_report = convert_float_model(model, representative_data,
                                                      choice_inputs, dense, ship)
        info = read_flatbuffer(named)  # ops and their layers, by tensor name
        check_flatbuffer(info)  # here, while its errors can name the tensors
        model_bytes = ship(named)
        inputs, compared = _sample_inputs(
            info, sample_inputs if sample_inputs is not None else representative_data)
        _say(progress, f"running {len(inputs[0])} sample(s) in TFLite-Micro and measuring the "
                       "arena")
        verification = verify(model_bytes, inputs, reference=model if compared else None,
                              progress=progress)
        arena_report = None
        if minimize_arena:
            _say(progress, "planning the arena offline")
            model_bytes, verification, arena_report = smaller_arena(model_bytes, inputs,
                                                                    verification)
        if board is not None:
            check_fits(board, len(model_bytes), verification.arena_bytes, info.operators)
        sketch_name = c_identifier(name or model.name)
        _say(progress, "looking for low-bit weights to LUT-compress")
        compressed, lut = _checked_lut(named, model_bytes, inputs, verification,
                                       ship, compress, minimize_arena)
        if lut is not None and not lut["tensors"]:
            _say(progress, lut["why"])
        elif lut is not None and not lut["written"]:
            _say(progress, f"LUT compression would save {lut['flash_saved_bytes']:,} B, less than "
                           f"DECODE's {lut['decode_code_bytes']:,} B of code: no "
                           "model_compressed.tflite (--compress always writes it)")
        _say(progress, f"writing the flatbuffer, C array and sketch '{sketch_name}'")
        notes = library_notes(info)
        for note in notes:
            warnings.warn(ArduinoLibraryWarning(note), stacklevel=2)
        cmsis_nn = cmsis_nn_margin(model_bytes)
        sizes = arena_sizes(verification.arena_bytes, verification.arena_32bit, cmsis_nn)
        sketch = arduino_sketch(
            info, sketch_name, sizes,
            [tensor.quantize(values[0]) for tensor, values in zip(info.inputs, inputs)],
            [tensor.quantize(values[0]) for tensor, values in zip(info.outputs,
                                                                 verification.outputs)],
            "the first sample input" if compared else "all zeros (no sample inputs given)",
            compressed=lut, notes=notes, arena_plan=arena_report,
            arena_32bit=verification.arena_32bit, cmsis_nn=cmsis_nn,
        )
        arrays = c_array_files(model_bytes, model_name=sketch_name)
        compressed_arrays = {} if compressed is None else c_array_files(
            compressed, model_name=f"{sketch_name} (LUT-compressed)",
            array_name=COMPRESSED_ARRAY_NAME, file_stem="model_compressed_data")
        report = _report(sketch_name, model, info, model_bytes, verification, compared, sizes)
        report["board"] = None if board is None else _board_report(board, info, verification)
        report["lut"] = lut
        report["dense"] = dense_report
        report["arena"] = arena_report
        report["arena_32bit"] = verification.arena_32bit
        report["cmsis_nn_arena"] = cmsis_nn
        files = {"model.tflite": model_bytes, **arrays, **compressed_arrays,
                 f"arduino/{sketch_name}/{sketch_name}.ino": sketch,
                 "report.json": json.dumps(report, indent=2) + "\n"}
        files.update({f"arduino/{sketch_name}/{file}": text for file, text in arrays.items()})
        files.update(platformio_files(sketch, arrays, sketch_name,
                                      None if board is None else board.key))
        if compressed is not None:
            files["model_compressed.tflite"] = compressed
        _write(staging, files)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(
        out_dir=out_dir,
        tflite_path=out_dir / "model.tflite",
        sketch_path=out_dir / "arduino" / sketch_name / f"{sketch_name}.ino",
        flatbuffer_bytes=len(model_bytes),
        arena_bytes=verification.arena_bytes,
        arena_size=sizes["mcu"],
        info=info,
        verification=verification if compared else None,
        report=report,
        compressed_path=None if compressed is None else out_dir / "model_compressed.tflite",
    )

