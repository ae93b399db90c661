"""Per-layer or per-channel int8 weights for a float model's fully-connected layers,
chosen by measurement when the converter quantizes it (post-training quantization).

TensorFlow's converter (2.21) quantizes Dense weights per output channel: a float32
scale and an int64 zero point per channel for the weights and the int32 bias, and
TFLite-Micro keeps a multiplier and a shift per channel in the arena. On a 266 k-weight
Dense autoencoder that is over 30 kB more flash and a 4x larger arena than per-layer
scales, for under 10 % less output error (`tests/export/test_dense_granularity.py`). So both are converted and run in TFLite-Micro, and per-channel
is kept only where it cuts the output error against the float model by `MIN_ERROR_CUT`.

```python
model_bytes, report = convert_float_model(model, x_train[:300], x_val[:200], "auto")
report["chosen"]          # "per-tensor" or "per-channel", with both variants' numbers
```
"""

from typing import Callable, Optional, Sequence, Tuple

import keras
import numpy as np

from tflw.export.convert import sublayers, to_tflite
from tflw.export.verify import verify
from tflw.model_data import as_model_input

CHOICES = ("auto", "per-tensor", "per-channel")
# Per-channel costs flash and arena on every Dense layer; it must buy a clear gain.
MIN_ERROR_CUT = 0.10


def has_dense(model: keras.Model) -> bool:
    """Whether `model` (Keras 3 or tf_keras) holds a Dense layer with more than one output
    (a granularity to pick)."""
    return any(type(layer).__name__ in ("Dense", "QuantDense") and getattr(layer, "units", 1) > 1
               for layer in sublayers(model))


def output_error(outputs: np.ndarray, reference: np.ndarray) -> float:
    """RMS of (outputs - reference) over the RMS of reference: the error the quantized
    model adds, relative to the float model's output scale."""
    reference = np.asarray(reference, np.float64)
    difference = np.asarray(outputs, np.float64) - reference
    return float(np.sqrt(np.mean(difference ** 2)) / max(np.sqrt(np.mean(reference ** 2)), 1e-12))


def convert_float_model(model: keras.Model, representative_data: Sequence[np.ndarray],
                        inputs: Sequence[np.ndarray], dense: str = "auto",
                        ship: Callable[[bytes], bytes] = bytes) -> Tuple[bytes, Optional[dict]]:
    """The flatbuffer of float `model` at the Dense granularity `dense` asks for ("auto":
    measured on `inputs`, one array per model input), and a report of the choice (None where the model has no Dense
    layer to choose for). The report's sizes are of `ship(flatbuffer)`, what is written
    (e.g. `tflw.export.names.without_names`).

    Raises:
        ValueError: `dense` is not one of `CHOICES`.
    """
    if dense not in CHOICES:
        raise ValueError(f"dense={dense!r}: choose one of {', '.join(CHOICES)}.")
    if not has_dense(model):
        return to_tflite(model, representative_data), None
    if dense != "auto":
        model_bytes = to_tflite(model, representative_data, dense == "per-channel")
        return model_bytes, {"chosen": dense, "chosen_by": "dense= argument"}
    references = model.predict(as_model_input(inputs), verbose=0)
    references = references if isinstance(references, (list, tuple)) else [references]
    variants, report = {}, {}
    for name in ("per-tensor", "per-channel"):
        variants[name] = to_tflite(model, representative_data, name == "per-channel")
        run = verify(variants[name], inputs)  # named: its checks' errors can name tensors
        report[name] = {"flatbuffer_bytes": len(ship(variants[name])),
                        "arena_bytes": run.arena_bytes,
                        "output_error": float(np.mean([
                            output_error(out, ref) for out, ref in zip(run.outputs, references)]))}
    cut = 1.0 - report["per-channel"]["output_error"] / max(report["per-tensor"]["output_error"],
                                                            1e-12)
    chosen = "per-channel" if cut > MIN_ERROR_CUT else "per-tensor"
    report.update(chosen=chosen, chosen_by=f"measured on {len(inputs[0])} inputs: per-channel cuts "
                  f"the output error by {cut:.1%} (kept above {MIN_ERROR_CUT:.0%})")
    return variants[chosen], report
