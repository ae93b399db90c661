"""tflw: a Keras 3 model all the way onto a microcontroller.

Quantization-aware training whose predictions match the int8 model TFLite-Micro runs,
export to a fully-integer flatbuffer verified in the real TFLite-Micro interpreter, and a
ready Arduino sketch with the op resolver and tensor arena taken from the model.

```python
import tflw

qat = tflw.quantize_model(model)                      # int8 fake-quant, BN folded
small = tflw.quantize_model(model, weight_bits=4)     # LSQ 4-bit weights, LUT-compressed on export
precise = tflw.quantize_model(model, activation_bits=16)  # TFLite 16x8: int16 activations
w2a2 = tflw.quantize_model(model, weight_bits=2, method="apot", activation_bits=2,
                           calibration_data=x_train[:512])  # ReLUs on 4 levels, int8 kernels
qat.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
qat.fit(x_train, y_train, epochs=1)
result = tflw.export(qat, "build/mnist", sample_inputs=x_test[:200])
ptq = tflw.ptq(model, x_train[:1024])                 # no training: MSE ranges, bias correction
ptq4 = tflw.ptq(model, x_train[:1024], weight_bits=4)  # + equalization and AdaRound, no labels
print(result.flatbuffer_bytes, result.arena_size, result.verification.max_lsb_difference)
check = tflw.verify(result.tflite_path, x_test, reference=qat)

pruned = tflw.prune_model(model, tflw.PolynomialDecay(0.0, 0.5, 0, 1000), structure="channels")
pruned.compile(...); pruned.fit(..., callbacks=[tflw.UpdatePruningStep()])
small = tflw.strip_pruning(pruned)                    # fewer filters, same function

distiller = tflw.Distiller(student=qat, teacher=big_float_model, temperature=4.0, alpha=0.1)
distiller.compile("adam", loss, metrics=["accuracy"]); distiller.fit(x_train, y_train)

print(tflw.analyze(qat, board="nano33ble"))          # per-op costs, arena, budget
model = tflw.models.resnet8()                         # MCU-shaped zoo, lightweight blocks
tflw.export(qat, "build/mnist", board="nano33ble")    # fails clearly if it does not fit
fit = tflw.fit_board(model, "nano33ble", (x_train, y_train), (x_val, y_val), max_flash=40_000)
print(fit.summary())                                  # bits and channels per layer, measured
qat.save("qat.keras"); qat = tflw.load_model("qat.keras")  # tflw's layers known to Keras
check = tflw.firmware.check_firmware("build/mnist", "~/tflite-micro", target="cortex-m4")
print(check.bit_exact, check.arena_used_bytes, check.flash)  # the sketch built and run
```
"""

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Where each public name lives. They load on first use, so `import tflw` (and the `tflw`
# command's --help) does not import TensorFlow.
_PUBLIC = {
    "Analysis": "tflw.analysis",
    "ConstantSparsity": "tflw.pruning",
    "CubicSparsity": "tflw.pruning",
    "Distiller": "tflw.distillation",
    "ExportResult": "tflw.export",
    "FitResult": "tflw.search",
    "PolynomialDecay": "tflw.pruning",
    "UpdatePruningStep": "tflw.pruning",
    "VerifyResult": "tflw.export",
    "analyze": "tflw.analysis",
    "calibrate": "tflw.quantization",
    "export": "tflw.export",
    "fit_board": "tflw.search",
    "load_model": "tflw.model_file",
    "prune_model": "tflw.pruning",
    "ptq": "tflw.ptq",
    "quantize_model": "tflw.quantization",
    "read_flatbuffer": "tflw.export",
    "strip_pruning": "tflw.pruning",
    "verify": "tflw.export",
}
_SUBMODULES = ("boards", "errors", "firmware", "models")

__all__ = [
    "Analysis",
    "ConstantSparsity",
    "CubicSparsity",
    "Distiller",
    "ExportResult",
    "FitResult",
    "PolynomialDecay",
    "UpdatePruningStep",
    "VerifyResult",
    "__version__",
    "analyze",
    "boards",
    "calibrate",
    "errors",
    "export",
    "firmware",
    "fit_board",
    "load_model",
    "models",
    "prune_model",
    "ptq",
    "quantize_model",
    "read_flatbuffer",
    "strip_pruning",
    "verify",
]

if TYPE_CHECKING:
    from tflw import boards, errors, firmware, models
    from tflw.analysis import Analysis, analyze
    from tflw.distillation import Distiller
    from tflw.export import ExportResult, VerifyResult, export, read_flatbuffer, verify
    from tflw.model_file import load_model
    from tflw.ptq import ptq
    from tflw.pruning import (
        ConstantSparsity,
        CubicSparsity,
        PolynomialDecay,
        UpdatePruningStep,
        prune_model,
        strip_pruning,
    )
    from tflw.quantization import calibrate, quantize_model
    from tflw.search import FitResult, fit_board


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _SUBMODULES or importlib.util.find_spec(f"tflw.{name}") is not None:
        value = importlib.import_module(f"tflw.{name}")  # e.g. tflw.analysis.keras_costs
    else:
        raise AttributeError(f"module 'tflw' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__() -> list:
    return __all__


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the subpackages tflw.export and tflw.ptq sets tflw.export / tflw.ptq to
        # them; the public names are the functions they hold.
        if name in _PUBLIC and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

# tflw's layers register with Keras when their modules load. Where the caller has loaded
# Keras already, they load now (0.1 s), so that keras.saving.load_model reads a saved tflw
# model before any tflw name is used; the `tflw` command starts without Keras.
if "keras" in sys.modules:
    from tflw.model_file import register_layers

    register_layers()
