"""Every error (and warning) tflw raises, in one place.

Each message names the layer, op, tensor or path at fault and says what to do about it.
Catch `TflwError` to handle them all.
"""


class TflwError(Exception):
    """Base class of all tflw errors."""


class UnsupportedModelError(TflwError):
    """The model is not a kind tflw can rewrite (e.g. a subclassed Keras model)."""


class UnsupportedLayerError(TflwError):
    """A layer has no quantization rule, or sits where it cannot be quantized exactly."""

    def __init__(self, layer_name: str, layer_class: str, fix: str):
        self.layer_name = layer_name
        self.layer_class = layer_class
        super().__init__(f"layer '{layer_name}' ({layer_class}): {fix}")


class UncalibratedModelError(TflwError):
    """A fake-quant range was never set: the model was not trained or calibrated."""


class MissingRepresentativeDataError(TflwError):
    """A float model needs representative data for post-training quantization."""


class ConversionError(TflwError):
    """The TFLite converter failed or produced a model TFLite-Micro cannot run."""


class NotFullyIntegerError(ConversionError):
    """The flatbuffer still holds float tensors (hybrid or float16 model)."""


class InterpreterError(TflwError):
    """The TFLite-Micro interpreter refused the model or crashed while running it."""


class InputMismatchError(TflwError):
    """Inputs given to verify/export do not match the model's input shape."""


class OutputDirectoryError(TflwError):
    """The output folder exists (and overwrite was not asked for) or cannot be written."""


class ModelFileError(TflwError):
    """A model file is missing or cannot be read."""


class NonFiniteError(TflwError):
    """Weights or data hold NaN or Inf (names the variable or the argument)."""


class DynamicShapeError(UnsupportedModelError):
    """A model input has an unknown size other than the batch: TFLite-Micro needs static shapes."""


class UnsupportedOpError(ConversionError):
    """The flatbuffer uses an op TFLite-Micro has no kernel for (names the op)."""


class DegenerateQuantizationError(ConversionError):
    """A tensor's quantization scale is zero or not finite (names the tensor)."""


class UnknownBoardError(TflwError):
    """A board key that `tflw.boards` does not know (lists the known ones)."""


class ModelTooLargeError(TflwError):
    """Model or arena exceeds the board's budget (says by how much and which layers dominate)."""


class SilentActivationWarning(UserWarning):
    """A low-bit activation is 0 for every calibration sample: the layers after it see no
    signal (QAT may still revive it)."""


class LegacyModelFileWarning(UserWarning):
    """A legacy Keras 2 `.h5` file was loaded with `tf_keras` and goes on as a tf_keras model."""


class ArduinoLibraryWarning(UserWarning):
    """The Arduino library the sketch names lacks an op, or runs one of the model's int16
    kernels wrongly: the sketch will not compile or not give the verified outputs there."""


class FirmwareBuildError(TflwError):
    """A firmware build for `tflw firmware check` failed: a missing TFLite-Micro tree,
    download or compiler, or a file that does not compile (names it and the fix)."""
