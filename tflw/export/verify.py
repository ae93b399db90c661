"""`verify`: run a flatbuffer in the real TFLite-Micro interpreter and compare to Keras.

```python
result = verify("tflw-demo/model.tflite", x_test[:500], reference=qat_model)
print(result.argmax_agreement, result.max_lsb_difference, result.arena_bytes)
```
"""

import os
from pathlib import Path
from dataclasses import dataclass, field
from typing import Optional, Sequence, TYPE_CHECKING, Union

import numpy as np

from tflw.errors import ModelFileError
from tflw.export.arena_32bit import arena_on_32_bit, model_counts
from tflw.export.flatbuffer import read_flatbuffer
from tflw.export.preflight import check_flatbuffer
from tflw.export.tflm import run_tflm
from tflw.model_data import flatbuffer_specs, model_arrays

# Float noise in the reference (a sum of products in float32) can put a value exactly one
# LSB away a hair above 1.0; int16 steps are 256 times finer, so the same noise is more LSB.
LSB_TOLERANCE = {"INT8": 1e-3, "INT16": 1e-2}

if TYPE_CHECKING:
    import keras


@dataclass
class VerifyResult:
    """What TFLite-Micro computed, and how far it is from the Keras reference.

    Attributes:
        outputs: dequantized outputs, one array per model output, sample axis first.
        arena_bytes: the smallest tensor arena in which the interpreter ran (host build).
        invoke_seconds: mean time of one inference in the interpreter on this host (compare
            models by its ratio; a microcontroller is orders of magnitude slower).
        reference_outputs: the reference model's outputs on the same (quantized) inputs.
        argmax_agreement: fraction of samples whose first output has the same argmax.
        max_lsb_difference: largest |TFLM - reference| over all outputs, in output LSBs.
        arena_32bit: the arena a 32-bit MCU needs with TFLite-Micro's reference kernels,
            split into non-persistent and persistent bytes (`tflw.export.arena_32bit`).
    """

    outputs: list
    arena_bytes: int
    invoke_seconds: float = 0.0
    reference_outputs: Optional[list] = None
    argmax_agreement: Optional[float] = None
    max_lsb_difference: Optional[float] = None
    lsb_differences: list = field(default_factory=list)
    lsb_tolerance: float = LSB_TOLERANCE["INT8"]
    arena_32bit: Optional[dict] = None

    @property
    def parity(self) -> bool:
        """All outputs within one LSB of the reference."""
        return self.max_lsb_difference is not None and (
            self.max_lsb_difference <= 1.0 + self.lsb_tolerance
        )


def same_outputs(a: VerifyResult, b: VerifyResult) -> bool:
    """Whether two runs gave the same outputs bit for bit."""
    return all(np.array_equal(x, y) for x, y in zip(a.outputs, b.outputs))


def _as_list(inputs) -> list:
    return [np.asarray(x) for x in inputs] if isinstance(inputs, (list, tuple)) else [np.asarray(inputs)]


def verify(
    tflite: Union[bytes, str, os.PathLike],
    inputs: Union[np.ndarray, Sequence[np.ndarray]],
    reference: Optional["keras.Model"] = None,
    progress: bool = False,
) -> VerifyResult:
    """Run `tflite` in TFLite-Micro (in a separate process) on float `inputs`.

    Inputs are quantized with the flatbuffer's own input scale and zero point; the
    reference model sees the same values dequantized, so only the arithmetic differs.

    Args:
        tflite: flatbuffer bytes or a path to a `.tflite` file.
        inputs: float inputs with the sample axis first: an array, or for several
            inputs a list with one array per input (in the flatbuffer's input order, the
            Keras model's) or a dict by input name (with `reference`, whose names count).
        reference: optional Keras model (tflw QAT, tfmot QAT, or float) to compare with.
        progress: show a progress bar while TFLite-Micro runs the samples.

    Returns:
        A `VerifyResult`.

    Raises:
        InputMismatchError: the inputs do not match the model's inputs (count, shapes).
        NonFiniteError: the inputs hold NaN or Inf.
        InterpreterError: the interpreter refused or crashed on the model.

    Example:
        >>> result = tflw.verify("tflw-demo/model.tflite", x_test[:200], reference=qat)
        >>> assert result.parity and result.argmax_agreement > 0.99
    """
    model_bytes = tflite if isinstance(tflite, (bytes, bytearray)) else read_model_file(tflite)
    info = read_flatbuffer(model_bytes)
    check_flatbuffer(info)
    # the flatbuffer's input names are op names (or stripped): the model's, where given
    specs = flatbuffer_specs(info, None if reference is None else [
        str(t.name) for t in reference.inputs])
    values = model_arrays(inputs, "inputs", specs)
    quantized = [tensor.quantize(v) for v, tensor in zip(values, info.inputs)]
    run = run_tflm(model_bytes, quantized, output_count=len(info.outputs), progress=progress)
    outputs = [tensor.dequantize(r) for r, tensor in zip(run.outputs, info.outputs)]
    result = VerifyResult(outputs=outputs, arena_bytes=run.arena_bytes,
                          invoke_seconds=run.invoke_seconds,
                          arena_32bit=arena_on_32_bit(run.recording,
                                                      model_counts(model_bytes)))
    if reference is not None:
        _compare(result, reference, quantized, info)
    return result


def read_model_file(path) -> bytes:
    """The bytes of a `.tflite` file; a `ModelFileError` naming it if unreadable."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ModelFileError(f"cannot read '{path}' ({error.strerror}): give a .tflite file.") from error


def _compare(result: VerifyResult, reference, quantized: list, info) -> None:
    seen = [tensor.dequantize(q) for q, tensor in zip(quantized, info.inputs)]
    predicted = reference.predict(seen if len(seen) > 1 else seen[0], batch_size=256, verbose=0)
    predicted = _as_list(predicted)
    result.reference_outputs = predicted
    result.lsb_differences = [
        np.abs(out - ref) / tensor.scale
        for out, ref, tensor in zip(result.outputs, predicted, info.outputs)
    ]
    result.max_lsb_difference = float(max(d.max() for d in result.lsb_differences))
    result.lsb_tolerance = max(LSB_TOLERANCE.get(t.dtype, LSB_TOLERANCE["INT8"])
                               for t in info.outputs)
    first, first_ref = result.outputs[0], predicted[0]
    result.argmax_agreement = float(
        np.mean(first.reshape(len(first), -1).argmax(-1) == first_ref.reshape(len(first), -1).argmax(-1))
    )
