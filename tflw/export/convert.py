"""Keras model -> fully-integer TFLite flatbuffer (int8 in, int8 out), or a clear error.

A quantization-aware model (tflw's or tfmot's) converts from its own fake-quant ranges; a
float model is post-training quantized from `representative_data`. Whatever the path, the
result is checked: a flatbuffer with any float tensor is refused, since TFLite-Micro has no
float fallback for hybrid or float16 models.

```python
model_bytes = to_tflite(qat_model)
model_bytes = to_tflite(float_model, representative_data=x_train[:500])
```
"""

import re
import warnings
from typing import Optional

import numpy as np

from tflw.conversion_trace import for_conversion
from tflw.errors import (
    ConversionError,
    MissingRepresentativeDataError,
    NotFullyIntegerError,
    UncalibratedModelError,
)
from tflw.export.int16_bias import widen_int16_biases
from tflw.export.flatbuffer import read_flatbuffer
from tflw.export.preflight import check_model
from tflw.model_data import ModelData, first_samples, model_arrays
from tflw.model_kind import is_tf_keras_model
from tflw.quantization.concatenate import share_concat_ranges

REPRESENTATIVE_SAMPLES = 300


def sublayers(model) -> list:
    """Every layer inside `model` (Keras 3 or tf_keras), nested ones too."""
    if is_tf_keras_model(model):
        return list(model.submodules)
    return list(model._flatten_layers(include_self=False, recursive=True))


def is_quantization_aware(model) -> bool:
    """True when the model carries fake-quant layers from tflw or tfmot."""
    for layer in sublayers(model):
        module = type(layer).__module__
        if hasattr(layer, "range_min") or "tensorflow_model_optimization" in module:
            return True
    return False


def activation_bits(model) -> int:
    """16 for a tflw model quantized with `activation_bits=16` (TFLite's 16x8), else 8."""
    widths = {getattr(layer, "bits", 8) for layer in sublayers(model) if hasattr(layer, "range_min")}
    if len(widths) > 1:
        raise ConversionError(
            f"model '{model.name}' mixes int8 and int16 activation quantizers; TFLite "
            "converts a model as int8 or as 16x8 as a whole: quantize it again with one "
            "activation_bits.")
    return widths.pop() if widths else 8


def check_calibrated(model) -> None:
    """Every tflw activation range must be non-empty, else the converter gets scale 0."""
    for layer in sublayers(model):
        if hasattr(layer, "range_min") and hasattr(layer, "range_max"):
            low, high = float(layer.range_min.numpy()), float(layer.range_max.numpy())
            if not np.isfinite([low, high]).all() or high <= low:
                raise UncalibratedModelError(
                    f"fake-quant layer '{layer.path if hasattr(layer, 'path') else layer.name}'"
                    f" has range [{low}, {high}]: the model was never trained or calibrated. "
                    "Run qat.fit(...) or tflw.calibrate(qat, x_sample) before exporting."
                )


def _converter(model, tf):
    if is_tf_keras_model(model):
        return tf.lite.TFLiteConverter.from_keras_model(model)
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    # TFLite-Micro needs static shapes: fix the batch at 1.
    specs = [tf.TensorSpec((1, *x.shape[1:]), x.dtype, name=x.name) for x in model.inputs]
    function = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    # Freezing makes every variable a constant, so each FakeQuant has constant ranges the
    # converter can fold into int8 quantization parameters.
    with for_conversion():
        frozen = convert_variables_to_constants_v2(function.get_concrete_function(*specs))
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen])


def _first_error_lines(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if re.search(r"error:", line)]
    short = [re.sub(r"^.*error: ", "", line) for line in lines[:3]]
    return "\n".join(short) if short else message.strip().splitlines()[-1]


def to_tflite(model, representative_data: Optional[ModelData] = None,
              dense_per_channel: bool = True) -> bytes:
    """Convert `model` to a fully-integer flatbuffer.

    `representative_data`: a float model's calibration inputs, in any form
    `tflw.model_data` takes (one array per input, a dict by name, batches).
    `dense_per_channel`: a float model's fully-connected weights get one scale per output
    channel (the converter's default since TensorFlow 2.15), or one per layer
    (`tflw.export.dense_granularity` chooses by measurement). QAT models carry their own.

    Raises:
        MissingRepresentativeDataError: a float model without `representative_data`.
        UncalibratedModelError: a QAT model with an unset activation range.
        ConversionError / NotFullyIntegerError: the converter failed, or left float tensors.
        DynamicShapeError / NonFiniteError: see `preflight`; InputMismatchError /
            NonFiniteError: the data does not fit the model (`tflw.model_data`).
    """
    import tensorflow as tf

    check_model(model)
    quantization_aware = is_quantization_aware(model)
    if quantization_aware:
        share_concat_ranges(model)
        check_calibrated(model)
    elif representative_data is None:
        raise MissingRepresentativeDataError(
            f"model '{model.name}' is a float model: pass representative_data (a few hundred "
            "typical inputs, e.g. x_train[:300]) for post-training int8 quantization, or "
            "train it with tflw.quantize_model first."
        )
    else:
        samples = first_samples(model_arrays(representative_data, "representative_data", model),
                                REPRESENTATIVE_SAMPLES)
    converter = _converter(model, tf)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    bits = activation_bits(model) if quantization_aware else 8
    converter.inference_input_type = converter.inference_output_type = (
        tf.int16 if bits == 16 else tf.int8)
    if bits == 16:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if not quantization_aware:
        converter.representative_dataset = lambda: (
            [array[i:i + 1] for array in samples] for i in range(len(samples[0])))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter._experimental_disable_per_channel_quantization_for_dense_layers = (
            not dense_per_channel)
    try:
        with warnings.catch_warnings():
            # QAT input ranges come from the fake-quant ops, not from "input statistics".
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            model_bytes = converter.convert()
    except Exception as error:  # the converter raises ConverterError or bare exceptions
        raise ConversionError(
            f"the TFLite converter failed on model '{model.name}':\n"
            f"{_first_error_lines(str(error))}"
        ) from error
    if bits == 16:
        model_bytes = widen_int16_biases(bytes(model_bytes))
    check_fully_integer(model_bytes, model.name, "INT16" if bits == 16 else "INT8")
    return bytes(model_bytes)


def check_fully_integer(model_bytes: bytes, name: str, io_type: str = "INT8") -> None:
    """Refuse hybrid/float16 models: TFLite-Micro runs integer kernels only."""
    info = read_flatbuffer(model_bytes)
    if info.float_tensors:
        shown = ", ".join(info.float_tensors[:5])
        raise NotFullyIntegerError(
            f"model '{name}' converted with {len(info.float_tensors)} float tensor(s) "
            f"({shown}): TFLite-Micro cannot run hybrid or float models. A layer without a "
            "fake-quant range, or an op with no int8 kernel, is usually the cause."
        )
    for tensor in info.inputs + info.outputs:
        if tensor.dtype != io_type:
            raise NotFullyIntegerError(
                f"model '{name}': tensor '{tensor.name}' is {tensor.dtype}, expected {io_type}."
            )
