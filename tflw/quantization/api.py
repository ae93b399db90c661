"""The public entry points of quantization: `quantize_model` and `calibrate`."""

import os
import warnings
from typing import Optional

import keras
import numpy as np

from tflw.errors import SilentActivationWarning, UnsupportedModelError
from tflw.model_data import ModelData, as_model_input, data_batches
from tflw.model_kind import is_tf_keras_model
from tflw.quantization.activation_balance import balance_activations
from tflw.quantization.concatenate import share_concat_ranges
from tflw.quantization.fake_quant import ACTIVATION_BITS
from tflw.quantization.low_bit_activations import (LOW_BIT_ACTIVATIONS, RELU6_LIMIT,
                                                  silent_layers)
from tflw.quantization.quantize_model import quantize_keras3


def quantize_model(
    model: keras.Model,
    calibration_data: Optional[ModelData] = None,
    weight_bits: Optional[int] = None,
    layer_bits: Optional[dict] = None,
    method: str = "lsq",
    activation_bits: int = 8,
    shared_levels: bool = False,
) -> keras.Model:
    """Return a trainable int8 quantization-aware copy of `model`.

    Keras 3 Sequential/Functional models are rewritten with tflw's layers: per-channel
    symmetric int8 weights for Conv2D/DepthwiseConv2D (per-tensor for Dense), BatchNorm
    folded into the kernel, ReLU/ReLU6 fused, per-tensor asymmetric int8 activations with
    moving-average ranges, placed exactly where TFLite-Micro holds int8 tensors. The copy
    keeps the original's weights, trains with ordinary `compile`/`fit` and saves as `.keras`.

    A `tf_keras` (Keras 2) model goes through `tfmot.quantization.keras.quantize_model`.

    Args:
        model: a built `keras.Sequential` or Functional `keras.Model` (or a tf_keras model).
        calibration_data: optional example inputs used to set the activation ranges
            before training, so the result exports even untrained: an array for a
            one-input model; for several inputs a list with one array per input or a dict
            by input name, as Keras's `fit` takes them; or an iterable of such batches
            (a generator, a tf.data.Dataset). Checked before the model is rewritten.
            With activation_bits 2 to 7 they also rescale the weights around each low-bit
            activation (a residual stream as a whole), so that its fixed clipping level
            fits the data (`tflw.quantization.balance_activations`); give them.
        weight_bits: 1 to 8 (default 8, or 1 for method="binary"). Below 8, each
            channel's weights train on at most 2^k levels chosen by `method`; they stay
            int8 on the device, where `export` LUT-compresses them to k bits. The first
            and last weighted layers stay 8-bit.
        layer_bits: overrides by layer name, each bits or (bits, method), the first and
            last layers included: {"conv_3": 2, "conv_4": (4, "kmeans")}.
        method: how the low-bit levels are learned:
            "lsq" (uniform, learned step, Esser et al. 2020; `tflw.quantization.lsq`),
            "ewgs" (LSQ with element-wise gradient scaling, Lee et al. 2021; `.ewgs`),
            "apot" (additive powers of two with a learned clipping level, Li et al. 2020;
            `.apot`), "apot+ewgs", "kmeans" (2^k learned centroids per channel;
            `.kmeans`) or "binary" (+-alpha per channel, 1 bit; `.binary`).
        activation_bits: 8, or 16 for TFLite's 16x8 scheme (int16 activations with
            symmetric ranges, int8 weights, int16 model input and output) for models that
            lose too much at int8 activations; export then converts for 16x8. Multiply and
            hard-swish are int8 only. Or 2 to 7: every ReLU/ReLU6 fused into a conv,
            dense or add clips at 6 (a ReLU becomes a ReLU6) on 2^k levels, which the
            int8 tensor and its fused ReLU6 hold exactly on the device (e.g. W2/A2);
            the model input, linear outputs and pooled means stay int8
            (`tflw.quantization.low_bit_activations`).
        shared_levels: below 8 bits, one set of 2^k levels and one int8 scale per layer
            instead of per output channel, so that export stores one LUT per layer:
            the smallest flash, at some accuracy (a per-channel table costs 2^k bytes
            per channel, which layers with few weights per channel feel).

    Returns:
        The quantization-aware model, uncompiled.

    Raises:
        UnsupportedModelError: for a subclassed model (the message says how to rewrite it).
        InputMismatchError / NonFiniteError: `calibration_data` does not fit the model.
        UnsupportedLayerError: naming the first layer without a quantization rule.

    Warns:
        SilentActivationWarning: with activation_bits 2 to 7, naming each layer whose
            low-bit output is 0 for every sample of `calibration_data`.

    Example:
        >>> qat = tflw.quantize_model(model)
        >>> qat.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        >>> qat.fit(x_train, y_train, epochs=1)
        >>> small = tflw.quantize_model(model, weight_bits=4, method="apot")
        >>> precise = tflw.quantize_model(model, activation_bits=16)
        >>> w2a2 = tflw.quantize_model(model, weight_bits=2, method="apot", activation_bits=2)
    """
    if activation_bits not in ACTIVATION_BITS + LOW_BIT_ACTIVATIONS:
        raise ValueError(f"activation_bits must be 2 to 8, or 16 (TFLite's 16x8), got "
                         f"{activation_bits}")
    if not isinstance(model, keras.Model) and not is_tf_keras_model(model):
        raise UnsupportedModelError(
            f"expected a keras.Model, got {type(model).__name__}. Load or build a Keras "
            "model first (keras.saving.load_model for a .keras file)."
        )
    # checked before the model is rewritten: a misfit fails fast, naming the input
    batches = (None if calibration_data is None
               else data_batches(calibration_data, "calibration_data", model))
    if batches is not None and activation_bits in LOW_BIT_ACTIVATIONS and len(batches[0]) > 1:
        raise UnsupportedModelError(
            f"activation_bits={activation_bits} takes models with one input; '{model.name}' "
            f"has {len(batches[0])}. Use activation_bits=8 or 16.")
    if is_tf_keras_model(model):
        if (weight_bits not in (None, 8) or layer_bits or method != "lsq" or activation_bits != 8
                or shared_levels):
            raise UnsupportedModelError(
                "weights below 8 bits and int16 activations are tflw's (Keras 3) layers "
                "only; tfmot quantizes tf_keras models at int8. Rebuild the model in "
                "Keras 3 for weight_bits or activation_bits.")
        qat = _quantize_with_tfmot(model)
    else:
        bits = weight_bits if weight_bits is not None else 1 if method == "binary" else 8
        qat = quantize_keras3(model, bits, method, layer_bits, activation_bits, shared_levels)
    if batches is not None:
        _run_batches(qat, batches)
        if activation_bits in LOW_BIT_ACTIVATIONS:
            # on the calibrated model, whose quantized inputs the producers really see
            data = np.concatenate([batch[0] for batch in batches])
            balance_activations(qat, data)
            _run_batches(qat, batches)
            _warn_silent(qat, data, activation_bits)
    return qat


def _warn_silent(qat: keras.Model, data: np.ndarray, activation_bits: int) -> None:
    silent = silent_layers(qat, data)
    if silent:
        step = RELU6_LIMIT / (2 ** activation_bits - 1)
        warnings.warn(SilentActivationWarning(
            f"{', '.join(repr(name) for name in silent)}: every {activation_bits}-bit "
            f"output is 0 on the calibration data (their ReLU outputs stay below "
            f"{step / 2:g}, half the first level), so the layers after them see no signal. "
            "Train the float model further, or use more activation_bits."))


def calibrate(model: keras.Model, data: ModelData, batch_size: int = 64) -> None:
    """Set the activation ranges of a quantization-aware model from example inputs.

    Runs the model forward in training mode (ranges update; no weight changes; BatchNorm
    statistics are frozen in tflw's layers), `batch_size` samples at a time.

    Args:
        model: the quantization-aware model.
        data: an array for a one-input model; for several inputs a list with one array per
            input (in `model.inputs` order) or a dict by input name, as Keras's `fit`
            takes them; or an iterable of such batches (a generator, a tf.data.Dataset,
            a list of lists or dicts). Checked before any run.

    Raises:
        InputMismatchError: wrong count of arrays, or shapes that do not fit the model.
        NonFiniteError: NaN or Inf in the data.

    Example:
        >>> tflw.calibrate(qat, x_train[:1024])
        >>> tflw.calibrate(fusion_qat, {"accel": windows, "audio": spectrograms})
    """
    _run_batches(model, data_batches(data, "data", model), batch_size)


def _run_batches(model, batches: list, batch_size: int = 64) -> None:
    """Run checked `batches` (each one array per input) through `model` in training mode."""
    for batch in batches:
        for start in range(0, len(batch[0]), batch_size):
            model(as_model_input([a[start:start + batch_size] for a in batch]), training=True)
    share_concat_ranges(model)


def _quantize_with_tfmot(model):
    # tfmot sets TF_USE_LEGACY_KERAS=1 for the whole process when imported; restore the
    # caller's setting so Keras 3 keeps working beside it.
    saved = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        import tensorflow_model_optimization as tfmot
    finally:
        if saved is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = saved
    return tfmot.quantization.keras.quantize_model(model)
