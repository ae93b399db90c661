"""`ptq`: a float model quantized without training, on unlabeled calibration data."""

import warnings
from typing import Iterable, Iterator, Optional

import keras
import numpy as np

from tflw.errors import UnsupportedModelError
from tflw.export.dense_granularity import output_error
from tflw.model_data import one_input_array
from tflw.model_graph import read_graph
from tflw.model_kind import is_tf_keras_model
from tflw.ptq.adaround import ITERATIONS, adaround_layer
from tflw.ptq.bias_correction import correct_biases
from tflw.ptq.layer_inputs import linear_layers, run_float_rounded, walk_layer_inputs
from tflw.ptq.brecq import blocks, brecq_block, walk_blocks
from tflw.ptq.equalization import equalize
from tflw.ptq.ranges import RANGE_METHODS, record_activations, set_range
from tflw.quantization.api import quantize_model
from tflw.quantization.concatenate import share_concat_ranges

CALIBRATION_SAMPLES = 1024
JUDGE_SAMPLES = 512
ROUNDINGS = ("nearest", "adaround", "brecq")


def _progress(items: Iterable, count: int, shown: bool, unit: str) -> Iterator:
    """`items` (taken one at a time, as a walk must be) with a bar over `count` of them."""
    bar = keras.utils.Progbar(count, unit_name=unit) if shown else None
    for index, item in enumerate(items):
        yield item
        if bar is not None:
            bar.update(index + 1)


def ptq(model: keras.Model, calibration_data: np.ndarray, weight_bits: int = 8,
        ranges: str = "mse", equalization: Optional[bool] = None,
        rounding: Optional[str] = None,
        bias_correction: bool = True, layer_bits: Optional[dict] = None,
        iterations: int = ITERATIONS, qdrop: float = 0.0,
        progress: bool = False) -> keras.Model:
    """Quantize a trained float model without training it: per-channel weights, an
    activation range per tensor from `calibration_data` (no labels), bias correction,
    and optionally cross-layer equalization.

    The result is a tflw quantization-aware model: `tflw.export` converts it as it
    converts a QAT model (bit-exact with TFLite-Micro), and it can still be fine-tuned.

    Args:
        model: a trained float Keras 3 model.
        calibration_data: typical inputs (a few hundred to 1,024, the first 1,024 used;
            labels never needed).
        weight_bits: 8, or 2 to 7 (uniform levels per channel, LUT-compressed by export;
            the first and last layers stay 8-bit, as in `quantize_model`, and so do
            depthwise convolutions: nine weights per channel do not survive fewer bits
            without retraining, and they are a small share of a model's weights; measured
            on MobileNetV1-0.25 in `benchmarks/ptq.py`. `layer_bits` overrides either).
        ranges: "minmax" (what the converter's post-training quantization does),
            "percentile" (the 0.01th to 99.99th) or "mse" (the clipping of least mean
            squared error on the tensor's 256 levels) (`tflw.ptq.ranges`).
        equalization: rescale the channels between layers joined by a ReLU (or nothing)
            so that both hold equal weight ranges, the float function unchanged
            (`tflw.ptq.equalization`; not across ReLU6, which does not commute). None (the
            default): on below 8 bits, where it helped on the benchmark's depthwise model
            most, off at 8 bits, where tflw's per-channel weights already do most of what
            it does; measure it on yours.
        rounding: "nearest", or "adaround": each layer's rounding up or down learned on
            its inputs in the quantized model, layer after layer (`tflw.ptq.adaround`,
            `iterations` steps of 32 samples per layer; below 8 bits only the layers below
            8 bits learn theirs), or "brecq": the same learned per block (a residual
            block, a depthwise layer with the next), reconstructing the float model's
            block output (`tflw.ptq.brecq`). None (the default): "adaround" below 8 bits,
            where it was within 1.5 points of float on the benchmark's three models, and
            "nearest" at 8, where AdaRound costs many times more for no measurable gain
            in top-1 (`benchmarks/ptq.py`).
        qdrop: with "adaround", the probability that each input element is its value before
            activation quantization while learning (QDrop; 0.5 in its paper; 0 is off).
        bias_correction: shift each layer's bias so that its quantized weights keep the
            mean output per channel (`tflw.ptq.bias_correction`); kept only if it lowers
            the model's output error against the float model on the calibration data.
        layer_bits: per-layer overrides, as in `quantize_model`.
        progress: a progress bar over the layers while rounding adaptively.

    Returns:
        The quantized model (Keras; export it, or fine-tune it as any QAT model).

    Example:
        >>> q = tflw.ptq(model, x_train[:1024])
        >>> tflw.export(q, "out", sample_inputs=x_test[:200]).verification.parity
        True
    """
    if is_tf_keras_model(model):
        raise UnsupportedModelError(
            "tflw.ptq takes Keras 3 models; for a tf_keras model use "
            "tflw.export(model, out_dir, representative_data=...) (the converter's "
            "post-training quantization), or rebuild it in Keras 3.")
    if ranges not in RANGE_METHODS:
        raise ValueError(f"ranges={ranges!r}: choose one of {', '.join(RANGE_METHODS)}")
    if rounding is None:
        rounding = "adaround" if weight_bits < 8 else "nearest"
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r}: choose one of {', '.join(ROUNDINGS)}")
    data = one_input_array(calibration_data, "calibration_data", model,
                           "tflw.ptq")[:CALIBRATION_SAMPLES]
    if equalization is None:
        equalization = weight_bits < 8
    if weight_bits < 8:
        layer_bits = {**{step.layer.name: 8 for step in read_graph(model).steps
                         if type(step.layer).__name__ == "DepthwiseConv2D"}, **(layer_bits or {})}
    if equalization:
        model, _ = equalize(model)
    qat = quantize_model(model, weight_bits=weight_bits, layer_bits=layer_bits, method="lsq")
    for quantizer, sample in record_activations(qat, data).items():
        set_range(quantizer, sample.range(ranges if quantizer.bits == 8 else "minmax"))
    share_concat_ranges(qat)
    float_kernels = {layer.name: keras.ops.convert_to_numpy(layer.folded_kernel_and_bias()[0])
                     for layer in linear_layers(qat)}
    if rounding == "adaround":
        walks = [walk_layer_inputs(qat, data)]
        if qdrop:  # the same layers, the inputs before activation quantization beside them
            walks.append(walk_layer_inputs(qat, data, quantized=False))
        layers = _progress(zip(*walks), len(float_kernels), progress, "layer")
        for (layer, inputs), *unquantized in layers:
            # Below 8 bits the 8-bit layers (first, last, depthwise) keep nearest rounding:
            # measured on MobileNetV1-0.25 at 4 bits, learning theirs too took 15 of 28
            # trainers for 0.15 points (49.25 against 49.10 %) and its error from 0.264 to 0.261
            if weight_bits < 8 and layer.weight_bits >= 8:
                continue
            adaround_layer(layer, inputs, iterations, drop=qdrop,
                           unquantized_inputs=unquantized[0][1] if unquantized else None)
    elif rounding == "brecq":
        found = blocks(qat)
        walked = _progress(walk_blocks(qat, data, found, float_kernels), len(found), progress,
                           "block")
        for block, inputs, target in walked:
            brecq_block(block, inputs, target, iterations)
    if bias_correction:
        _correct_if_better(qat, model, data, float_kernels)
    return qat


def _correct_if_better(qat: keras.Model, model: keras.Model, data: np.ndarray,
                       float_kernels: dict) -> None:
    """Bias correction, undone where it does not lower the output error against the float
    model on the calibration data (measured: it lowered it on a MobileNet-style model at
    8 bits and raised it on the demo CNN, whose rounding shifts are tiny)."""
    sample = data[:JUDGE_SAMPLES]
    reference = model.predict(sample, verbose=0)
    before = output_error(run_float_rounded(qat, sample), reference)
    saved = qat.get_weights()
    _, skipped = correct_biases(qat, data, float_kernels)
    if skipped:
        warnings.warn(f"bias correction skipped {', '.join(skipped)}: no bias and no "
                      "BatchNorm shift to move", stacklevel=3)
    if output_error(run_float_rounded(qat, sample), reference) > before:
        qat.set_weights(saved)

