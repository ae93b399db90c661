"""Put each low-bit activation where its fixed 2^k levels cover it best, by rescaling weights.

A k-bit activation clips at 6 (`tflw.quantization.low_bit_activations`), but a float
model's ReLU outputs may span [0, 0.5] or [0, 40]: at 2 bits the first all round to 0.
ReLU and max pooling commute with a positive factor c, so multiplying a producer's output
by c (its folded BatchNorm's gamma and beta, or its kernel and bias) and dividing every
consumer's kernel by c leaves the float model's function unchanged, while the quantizer
now clips the tensor at alpha* = 6 / c: the clipping level of least squared quantization
error on calibration data. Only tensors whose consumers are all convs or dense layers
(through pooling, padding, reshape, dropout) move; one that meets an Add keeps its scale,
since the other addend and the sum would have to move with it.

```python
qat = tflw.quantize_model(model, activation_bits=2)
tflw.calibrate(qat, x_train[:512])
balance_activations(qat, x_train[:512])   # quantize_model does both given calibration_data
tflw.calibrate(qat, x_train[:512])
```
"""

from typing import Optional

import keras
import numpy as np
from keras import ops

from tflw.model_graph import read_graph
from tflw.quantization.low_bit_activations import RELU6_LIMIT, relu6_levels_bits

# Values kept for the clipping-level search; more changes alpha* by well under 1 %.
_SAMPLE = 200_000
# Clipping levels tried: these quantiles of the positive values (1.0: the maximum).
_CANDIDATES = np.linspace(0.5, 1.0, 101)


def best_clip(values: np.ndarray, bits: int) -> float:
    """The clipping level alpha of least mean squared error for ReLU outputs `values` on
    2^bits uniform levels {0, alpha / (2^bits - 1), ..., alpha}; 0 for an all-zero tensor.

        alpha* = argmin_alpha mean((x - alpha/n * round(clip(x, 0, alpha) * n / alpha))^2),
        n = 2^bits - 1, alpha over the 50th to 100th percentiles of the positive x
    """
    positive = values[values > 0]
    if positive.size == 0:
        return 0.0
    steps = 2 ** bits - 1
    alphas = np.quantile(positive, _CANDIDATES)
    errors = [np.mean((values - np.round(np.clip(values, 0, a) * steps / a) * a / steps) ** 2)
              for a in alphas]
    return float(alphas[int(np.argmin(errors))])


def balance_activations(model: keras.Model, data: np.ndarray, seed: int = 0) -> dict:
    """Rescale the weights around each balanceable low-bit activation of a calibrated
    tflw quantization-aware `model` (see the module docstring), in graph order.
    Calibrate it again afterwards: the ranges downstream of a moved tensor shift a little.

    Returns:
        {producer layer name: factor c} for the tensors that moved.
    """
    graph = read_graph(model)
    rng = np.random.default_rng(seed)
    factors = {}
    for step in graph.steps:
        producer = step.layer
        if getattr(producer, "output_range", None) is None or not hasattr(producer, "linear"):
            continue
        consumers = _linear_consumers(graph, step.outputs[0])
        if not consumers or not _scalable(producer):
            continue
        values = _relu_outputs(model, step, data)
        if values.size > _SAMPLE:
            values = rng.choice(values, _SAMPLE, replace=False)
        alpha = best_clip(values, relu6_levels_bits(producer.output_range))
        if alpha <= 0.0:
            continue
        factor = RELU6_LIMIT / alpha
        _scale_output(producer, factor)
        for consumer in consumers:
            consumer.kernel.assign(consumer.kernel / factor)
        for layer in (producer, *consumers):
            layer.initialize_low_bit()
        factors[producer.name] = factor
    return factors


def _linear_consumers(graph, key: int) -> Optional[list]:
    """The tflw conv/dense layers that read tensor `key` through same-scale layers, or None
    when any other layer (an Add, a model output) reads it."""
    from tflw.quantization.quantize_model import SAME_SCALE, LAYER_RULES  # the one table

    if graph.is_output(key):
        return None
    found = []
    for index in graph.consumers(key):
        step = graph.steps[index]
        rule = LAYER_RULES.get(type(step.layer).__name__)
        if hasattr(step.layer, "linear") and step.inputs[0] == key and len(step.inputs) == 1:
            found.append(step.layer)
        elif rule is not None and rule.kind == SAME_SCALE:
            more = _linear_consumers(graph, step.outputs[0])
            if more is None:
                return None
            found += more
        else:
            return None
    return found


def _scalable(layer) -> bool:
    """Whether `layer`'s output can be scaled by its own weights: gamma with beta, or,
    without BatchNorm, kernel with bias."""
    bn = layer.batch_norm
    return bn is None or bn.get("scale", True)


def _scale_output(layer, factor: float) -> None:
    if layer.batch_norm is None:
        layer.kernel.assign(layer.kernel * factor)
        if layer.use_bias:
            layer.bias.assign(layer.bias * factor)
        return
    layer.gamma.assign(layer.gamma * factor)
    if layer.batch_norm.get("center", True):
        layer.beta.assign(layer.beta * factor)


def _relu_outputs(model: keras.Model, step, data: np.ndarray) -> np.ndarray:
    """The producer's float ReLU outputs on `data` (its input as the model quantizes it)."""
    inputs = keras.Model(model.input, step.node.input_tensors[0]).predict(data, verbose=0)
    kernel, bias = step.layer.folded_kernel_and_bias()
    outputs = ops.relu(step.layer.linear(ops.convert_to_tensor(inputs), kernel) + bias)
    return np.asarray(ops.convert_to_numpy(outputs), np.float32).ravel()
