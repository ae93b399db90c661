"""One configuration made real: channels cut, QAT at its bits, distilled from the float
model, exported and measured in TFLite-Micro.

```python
qat, rate = train_candidate(model, config, x_train, y_train, logits, loss, epochs=2,
                            learning_rates=(2e-3, 1e-2), validation=(x_val, y_val))
result, measured = measure_candidate(qat, "fit/trial-1", x_val, y_val, decode=True)
measured = run_candidate(CandidateJob(...))   # both, in this process or a worker's
```
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import keras
import numpy as np

from tflw.distillation.distiller import Distiller
from tflw.export.export import ExportResult, export
from tflw.export.lut import DECODE_CODE_BYTES
from tflw.export.verify import verify
from tflw.pruning.one_shot import prune_channels
from tflw.quantization.api import quantize_model
from tflw.search.problem import Config

CALIBRATION_SAMPLES = 512
VERIFY_SAMPLES = 200


@dataclass
class Measured:
    """What TFLite-Micro says of one exported candidate.

    Attributes:
        flash_bytes: flash the model takes as shipped: the int8 flatbuffer, or with
            `runtime` "lut+decode" the LUT-compressed one plus DECODE's code.
        arena_bytes: the measured arena of that flatbuffer.
        accuracy: top-1 on the validation samples, outputs from TFLite-Micro.
        runtime: "int8" or "lut+decode".
        learning_rate: the fine-tuning rate the candidate was trained at.
    """

    flash_bytes: int
    arena_bytes: int
    macs: int
    accuracy: float
    runtime: str
    learning_rate: Optional[float] = None

    def fits(self, budgets: dict) -> bool:
        """Within `budgets`' "flash" and "arena" bytes."""
        return self.flash_bytes <= budgets["flash"] and self.arena_bytes <= budgets["arena"]


def _quantized(model: keras.Model, config: Config, x: np.ndarray) -> keras.Model:
    cut = {group: keep for group, keep in config.keep.items() if keep < 1.0}
    small = prune_channels(model, cut) if cut else model
    low_bits = {layer: bits for layer, bits in config.bits.items() if bits < 8}
    return quantize_model(small, layer_bits=low_bits or None,
                          calibration_data=x[:CALIBRATION_SAMPLES])


def _distiller(qat: keras.Model, model: keras.Model, loss: Callable,
               learning_rate: float) -> Distiller:
    # Distiller freezes its teacher; a copy keeps `model` (and later clones) trainable.
    teacher = keras.models.clone_model(model)
    teacher.set_weights(model.get_weights())
    distiller = Distiller(qat, teacher, cached_teacher_logits=True)
    distiller.compile(keras.optimizers.Adam(learning_rate), loss=loss)
    return distiller


def train_candidate(model: keras.Model, config: Config, x: np.ndarray, y: np.ndarray,
                    teacher_logits: np.ndarray, loss: Callable, epochs: int,
                    batch_size: int = 64, learning_rates: Sequence[float] = (1e-2,),
                    seed: int = 0, validation: Optional[tuple] = None) -> tuple:
    """The QAT model of `config`: channels pruned one-shot, low-bit layers as LSQ, then
    `epochs` of distillation from `model` (its logits on `x` precomputed).

    With several `learning_rates`, each trains on the first half of `x` from the same
    start, the one with the best top-1 on `validation` (inputs, labels) goes on with the
    second half and the remaining epochs: half an epoch more per extra rate.

    Returns:
        (the QAT model, the learning rate it was trained at).
    """
    rates = list(learning_rates)
    if not epochs:
        return _quantized(model, config, x), rates[0]
    if len(rates) > 1 and validation is None:
        raise ValueError("choosing among learning rates needs validation data")
    fit = dict(batch_size=batch_size, verbose=0)
    if len(rates) == 1:
        keras.utils.set_random_seed(seed)
        qat = _quantized(model, config, x)
        _distiller(qat, model, loss, rates[0]).fit(x, (y, teacher_logits), epochs=epochs, **fit)
        return qat, rates[0]
    half = len(x) // 2
    probes = []
    for rate in rates:
        keras.utils.set_random_seed(seed)
        qat = _quantized(model, config, x)
        distiller = _distiller(qat, model, loss, rate)
        distiller.fit(x[:half], (y[:half], teacher_logits[:half]), epochs=1, **fit)
        accuracy = top1(qat.predict(validation[0], batch_size=256, verbose=0), validation[1])
        probes.append((accuracy, -rates.index(rate), qat, distiller, rate))
    _, _, qat, distiller, rate = max(probes, key=lambda probe: probe[:2])
    distiller.fit(x[half:], (y[half:], teacher_logits[half:]), epochs=1, **fit)
    if epochs > 1:
        distiller.fit(x, (y, teacher_logits), epochs=epochs - 1, **fit)
    return qat, rate


def top1(outputs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs, -1) == np.ravel(y)))


def export_candidate(qat: keras.Model, out_dir: Path, x: np.ndarray, decode: bool,
                     minimize_arena: bool = True) -> ExportResult:
    """Export `qat` into `out_dir`, LUT-compressed too where the runtime has DECODE; the
    arena planned offline (a few hundred bytes of flash) only with `minimize_arena`."""
    return export(qat, out_dir, sample_inputs=x[:VERIFY_SAMPLES], overwrite=True,
                  compress="always" if decode else "never", minimize_arena=minimize_arena)


def measure_candidate(qat: keras.Model, out_dir: Path, x: np.ndarray, y: np.ndarray,
                      decode: bool, minimize_arena: bool = True) -> tuple:
    """Export `qat` into `out_dir` and measure it; returns (ExportResult, Measured)."""
    result = export_candidate(qat, out_dir, x, decode, minimize_arena)
    flash, arena, runtime = result.flatbuffer_bytes, result.arena_bytes, "int8"
    lut: Optional[dict] = result.report.get("lut")
    if decode and lut and lut["tensors"] and lut["flatbuffer_bytes"] + DECODE_CODE_BYTES < flash:
        flash = lut["flatbuffer_bytes"] + DECODE_CODE_BYTES
        arena, runtime = lut["arena_bytes_measured"], "lut+decode"
    outputs = verify(result.tflite_path, x).outputs[0]
    return result, Measured(flash, arena, int(result.info.macs), top1(outputs, y), runtime)


@dataclass
class CandidateJob:
    """Everything a worker needs to train, export and measure one configuration; it
    pickles, so an `concurrent.futures.Executor` (local processes, or Ray) can run it.

    Attributes:
        model: the float model, or the path of its `.keras` file (for another process).
        loss: `keras.losses.serialize` of the training loss.
        out_dir: the trial's folder; `qat.keras` is saved there beside the export.
    """

    model: Union[keras.Model, str]
    config: Config
    train: tuple
    teacher_logits: np.ndarray
    loss: dict
    epochs: int
    batch_size: int
    learning_rates: tuple
    seed: int
    out_dir: str
    validation: tuple
    decode: bool
    minimize_arena: bool = True


def run_candidate(job: CandidateJob) -> Measured:
    """Train, export and measure `job`'s configuration; its QAT model goes to
    `out_dir/qat.keras`."""
    model = job.model
    if isinstance(model, str):
        model = keras.saving.load_model(model, compile=False)
    qat, rate = train_candidate(model, job.config, *job.train, job.teacher_logits,
                                keras.losses.deserialize(job.loss), job.epochs, job.batch_size,
                                job.learning_rates, job.seed, job.validation)
    _, measured = measure_candidate(qat, Path(job.out_dir), *job.validation, decode=job.decode,
                                    minimize_arena=job.minimize_arena)
    measured.learning_rate = rate
    qat.save(Path(job.out_dir) / "qat.keras")
    return measured
