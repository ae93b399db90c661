"""`analyze`: per-op parameters, MACs, bytes and the measured arena, before you flash.

```python
analysis = tflw.analyze(qat_model, board="nano33ble")
print(analysis)                      # a per-op table, totals and the board's budget
analysis.to_dict()                   # the same as JSON-ready data
```
"""

import os
from typing import TYPE_CHECKING
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from tflw import boards
from tflw.analysis.metrics import information_density, netscore
from tflw.export.board_fit import check_fits
from tflw.export.cmsis_nn_arena import cmsis_nn_margin
from tflw.export.flatbuffer import read_flatbuffer
from tflw.export.lut import DECODE_CODE_BYTES, lut_compress
from tflw.export.verify import read_model_file, verify
from tflw.model_data import input_specs

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class Analysis:
    """A model as the device will hold it.

    Attributes:
        ops: the flatbuffer's `OperatorCost`s, in execution order: op name, layer, output
            shape and bytes, parameters and their bytes, MACs.
        parameters, macs, weight_bytes: totals over the ops.
        flatbuffer_bytes: flash the model takes (weights plus graph).
        arena_bytes: smallest tensor arena TFLite-Micro accepted, measured.
        host_invoke_seconds: one inference in TFLite-Micro on this computer (reference
            kernels: compare models with it, do not read it as device time).
        board: the board checked against, if any; `latency_estimate_seconds` comes from
            its cycles-per-MAC estimate (see `board.speed_source`).
        calibration: what the activation ranges came from (sizes do not depend on it).
        lut_bits: {weight tensor name: k} for the tensors LUT compression stores at k bits
            (low-bit weights); the others stay int8.
        lut_flatbuffer_bytes, lut_arena_bytes: flash and measured arena of the
            LUT-compressed model, None when nothing compresses.
        arena_32bit: the arena a 32-bit MCU needs with the reference kernels, split into
            non-persistent and persistent bytes (`tflw.export.arena_32bit`).
        cmsis_nn_arena: what CMSIS-NN's kernels add to it, per op
            (`tflw.export.cmsis_nn_arena.cmsis_nn_margin`).
    """

    ops: tuple
    parameters: int
    macs: int
    weight_bytes: int
    flatbuffer_bytes: int
    arena_bytes: int
    host_invoke_seconds: float
    calibration: str
    board: Optional[boards.Board] = None
    lut_bits: dict = field(default_factory=dict)
    lut_flatbuffer_bytes: Optional[int] = None
    lut_arena_bytes: Optional[int] = None
    arena_32bit: Optional[dict] = None
    cmsis_nn_arena: Optional[dict] = None

    @property
    def memory_access_bytes(self) -> int:
        """Bytes every op reads and writes (`OperatorCost.memory_access_bytes`), summed:
        on a microcontroller memory traffic is often what costs, beside the MACs."""
        return sum(op.memory_access_bytes for op in self.ops)

    @property
    def latency_estimate_seconds(self) -> Optional[float]:
        return None if self.board is None else self.board.latency_seconds(self.macs)

    def information_density(self, accuracy: float) -> float:
        return information_density(accuracy, self.parameters)

    def netscore(self, accuracy: float) -> float:
        return netscore(accuracy, self.parameters, self.macs)

    def check_fits(self, board: Union[str, boards.Board, None] = None) -> None:
        """Raise `ModelTooLargeError` unless the model fits `board` (default: `self.board`)."""
        check_fits(boards.get(board or self.board), self.flatbuffer_bytes, self.arena_bytes,
                   self.ops)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["board"] = None if self.board is None else self.board.key
        data["latency_estimate_seconds"] = self.latency_estimate_seconds
        return data

    def __str__(self) -> str:
        return summary(self)


def _flatbuffer(model, representative_data) -> tuple:
    """(flatbuffer bytes, what calibrated it) for a model, a `.tflite` path or bytes."""
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), "given flatbuffer"
    if isinstance(model, (str, os.PathLike)) and Path(model).suffix == ".tflite":
        return read_model_file(model), f"given flatbuffer {model}"
    from tflw.export.convert import is_quantization_aware, to_tflite
    from tflw.model_file import load_model

    model = load_model(model)
    if is_quantization_aware(model) or representative_data is not None:
        source = "QAT ranges" if is_quantization_aware(model) else "representative data"
        return to_tflite(model, representative_data), source
    # Sizes, MACs and the arena do not depend on the activation ranges, so synthetic
    # inputs calibrate well enough to measure them; accuracy is not measured here.
    rng = np.random.default_rng(0)
    synthetic = [rng.normal(size=(8, *spec.shape)).astype(np.float32)
                 for spec in input_specs(model)]
    return to_tflite(model, synthetic), "synthetic normal inputs (sizes only)"


def analyze(
    model: Union["keras.Model", bytes, str, os.PathLike],
    representative_data: Optional[np.ndarray] = None,
    board: Union[str, boards.Board, None] = None,
) -> Analysis:
    """Per-op parameters, MACs, weight and activation bytes, flash and measured arena.

    Args:
        model: a Keras model (float, tflw QAT or tfmot QAT), a `.keras` or `.tflite`
            path, or flatbuffer bytes. A Keras model is converted first, so its numbers
            are the flatbuffer's.
        representative_data: calibration inputs for a float model (for several inputs a
            list with one array per input or a dict by input name); without them,
            synthetic inputs calibrate it (sizes and MACs are exact either way).
        board: a `tflw.boards` key or `Board` to check the budgets against and to
            estimate latency for.

    Returns:
        An `Analysis`; `print` it for a per-op table.

    Example:
        >>> print(tflw.analyze("build/kws/model.tflite", board="nano33ble"))
    """
    board = None if board is None else boards.get(board)
    model_bytes, calibration = _flatbuffer(model, representative_data)
    info = read_flatbuffer(model_bytes)
    zeros = [np.zeros((1, *t.shape[1:]), np.float32) for t in info.inputs]
    run = verify(model_bytes, zeros)
    lut = lut_compress(model_bytes)
    lut = lut if lut is not None and lut.tensors else None
    lut_run = None if lut is None else verify(lut.model_bytes, zeros)
    ops = info.operators
    return Analysis(
        ops=ops,
        parameters=sum(op.parameters for op in ops),
        macs=sum(op.macs for op in ops),
        weight_bytes=sum(op.parameter_bytes for op in ops),
        flatbuffer_bytes=len(model_bytes),
        arena_bytes=run.arena_bytes,
        host_invoke_seconds=run.invoke_seconds,
        calibration=calibration,
        board=board,
        lut_bits={} if lut is None else {t.name: t.bits for t in lut.tensors},
        lut_flatbuffer_bytes=None if lut is None else len(lut.model_bytes),
        lut_arena_bytes=None if lut_run is None else lut_run.arena_bytes,
        arena_32bit=run.arena_32bit,
        cmsis_nn_arena=cmsis_nn_margin(model_bytes),
    )


def summary(analysis: Analysis) -> str:
    """A Larq-style printed table of `analysis`."""
    header = ("layer", "op", "output", "bits", "params", "MACs", "weight B", "act. B",
              "memory B")
    rows = [(op.layer, op.name, "x".join(map(str, op.output_shape[1:])),
             str(analysis.lut_bits.get(op.weight_tensor, 8)) if op.weight_tensor else "",
             f"{op.parameters:,}", f"{op.macs:,}", f"{op.parameter_bytes:,}",
             f"{op.output_bytes:,}", f"{op.memory_access_bytes:,}") for op in analysis.ops]
    total = ("total", "", "", "", f"{analysis.parameters:,}", f"{analysis.macs:,}",
             f"{analysis.weight_bytes:,}", "", f"{analysis.memory_access_bytes:,}")
    widths = [max(len(row[i]) for row in [header, *rows, total]) for i in range(len(header))]

    def line(row) -> str:
        cells = [cell.ljust(w) if i < 4 else cell.rjust(w) for i, (cell, w) in
                 enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    lines = [line(header), rule, *map(line, rows), rule, line(total), "",
             f"flash (flatbuffer)  {analysis.flatbuffer_bytes:,} B",
             f"arena (measured)    {analysis.arena_bytes:,} B on this 64-bit host",
             *([] if analysis.arena_32bit is None else [
                 f"arena, 32-bit MCU   {analysis.arena_32bit['arena_bytes']:,} B "
                 f"({analysis.arena_32bit['non_persistent_bytes']:,} B tensors and scratch, "
                 f"{analysis.arena_32bit['persistent_bytes']:,} B persistent; reference kernels)"]),
             *([] if analysis.cmsis_nn_arena is None else [
                 f"  with CMSIS-NN     up to {analysis.cmsis_nn_arena['margin_bytes']:,} B more "
                 f"({analysis.cmsis_nn_arena['scratch_growth_bytes']:,} B scratch beyond the "
                 f"tensors' plan, {analysis.cmsis_nn_arena['persistent_bytes']:,} B per-op state)"]),
             f"activation ranges   {analysis.calibration}"]
    if analysis.lut_flatbuffer_bytes is not None:
        saved = analysis.flatbuffer_bytes - analysis.lut_flatbuffer_bytes
        verdict = "pays" if saved > DECODE_CODE_BYTES else "does not pay"
        lines += [f"LUT-compressed      {analysis.lut_flatbuffer_bytes:,} B flash, "
                  f"{analysis.lut_arena_bytes:,} B arena (measured; needs TFLite-Micro's DECODE)",
                  f"  DECODE's code     {DECODE_CODE_BYTES:,} B on a Cortex-M4: saving "
                  f"{saved:,} B {verdict}"]
    if analysis.board is not None:
        lines += _board_lines(analysis, analysis.board)
    return "\n".join(lines)


def _board_lines(analysis: Analysis, board: boards.Board) -> list:
    flash, arena = board.model_flash_budget, board.arena_budget
    return [
        "",
        f"{board.name} ({board.mcu})",
        f"  flash  {analysis.flatbuffer_bytes:,} of {flash:,} B for the model "
        f"({analysis.flatbuffer_bytes / flash:.0%})",
        f"  RAM    {analysis.arena_bytes:,} of {arena:,} B for the arena "
        f"({analysis.arena_bytes / arena:.0%})",
        f"  latency ~{analysis.latency_estimate_seconds * 1e3:.1f} ms, an estimate "
        f"({board.cycles_per_mac} cycles/MAC: {board.speed_source})",
    ]
