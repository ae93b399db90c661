"""Put each low-bit activation where its fixed 2^k levels cover it best, by rescaling weights.

A k-bit activation clips at 6 (`tflw.quantization.low_bit_activations`), but a float
model's ReLU outputs may span [0, 0.5] or [0, 40]: at 2 bits the first all round to 0.
ReLU and max pooling commute with a positive factor c, so multiplying a producer's output
by c (its folded BatchNorm's gamma and beta, or its kernel and bias) and dividing every
consumer's kernel by c leaves the float model's function unchanged, while the quantizer
now clips the tensor at alpha* = 6 / c: the clipping level of least squared quantization
error on calibration data. Tensors joined through an Add move together (a `ScaleGroup`:
a residual stream, its addends and sums, through pooling, padding, reshape, dropout), by
one factor, the clipping level of least summed error over the group's low-bit tensors;
the learned ranges of its 8-bit tensors (a branch's output before the Add) move with it.
A group that a model output or any other op (Concatenate, Multiply, an unfused
activation) reads, or that the model input writes, keeps its scale.

```python
qat = tflw.quantize_model(model, activation_bits=2)
tflw.calibrate(qat, x_train[:512])
balance_activations(qat, x_train[:512])   # quantize_model does both given calibration_data
tflw.calibrate(qat, x_train[:512])
```
"""

from dataclasses import dataclass, field
from typing import Optional

import keras
import numpy as np
from keras import ops

from tflw.model_graph import read_graph
from tflw.quantization.add import QuantAdd
from tflw.quantization.folded import ACTIVATIONS
from tflw.quantization.layer_kinds import LAYER_KINDS, SAME_SCALE
from tflw.quantization.low_bit_activations import RELU6_LIMIT, relu6_levels_bits
from tflw.quantization.pooling import QuantAveragePooling2D, QuantGlobalAveragePooling2D

# Values kept for the clipping-level search; more changes alpha* by well under 1 %.
_SAMPLE = 200_000
# Clipping levels tried: these quantiles of the positive values (1.0: the maximum).
_CANDIDATES = np.linspace(0.5, 1.0, 101)
# tflw's layers that commute with a positive factor (beside LAYER_KINDS' same-scale ones).
_PASSES = (QuantAdd, QuantAveragePooling2D, QuantGlobalAveragePooling2D)


def best_clip(values, bits: int) -> float:
    """The clipping level alpha of least mean squared error for ReLU outputs `values` (one
    array, or a list of arrays that share alpha: the error is the sum of their means) on
    2^bits uniform levels {0, alpha / (2^bits - 1), ..., alpha}; 0 for all-zero tensors.

        alpha* = argmin_a sum_t mean((x_t - a/n * round(clip(x_t, 0, a) * n / a))^2),
        n = 2^bits - 1, a over the 50th to 100th percentiles of the positive x
    """
    tensors = [values] if isinstance(values, np.ndarray) else list(values)
    positive = np.concatenate([t[t > 0] for t in tensors])
    if positive.size == 0:
        return 0.0
    steps = 2 ** bits - 1
    alphas = np.quantile(positive, _CANDIDATES)
    errors = [sum(np.mean((t - np.round(np.clip(t, 0, a) * steps / a) * a / steps) ** 2)
                  for t in tensors) for a in alphas]
    return float(alphas[int(np.argmin(errors))])


@dataclass
class ScaleGroup:
    """Tensors that must move by one factor: those joined through Adds, pooling and other
    same-scale layers. `producers` are the tflw conv/dense layers that write them (their
    outputs are multiplied), `consumers` those that read them (their kernels divided),
    `passes` the Adds, pooling and same-scale layers between (their learned ranges, where
    they have one, multiplied)."""

    producers: dict = field(default_factory=dict)
    consumers: dict = field(default_factory=dict)
    passes: dict = field(default_factory=dict)

    def low_bit(self) -> list:
        """Indexes of the steps whose output is a low-bit activation (a fixed range)."""
        return [i for i, layer in {**self.producers, **self.passes}.items()
                if getattr(layer, "output_range", None) is not None]


def balance_activations(model: keras.Model, data: np.ndarray, seed: int = 0) -> dict:
    """Rescale the weights around each balanceable group of low-bit activations of a
    calibrated tflw quantization-aware `model` (see the module docstring), in graph
    order. Calibrate it again afterwards: the ranges downstream of a moved tensor shift a
    little.

    Returns:
        {producer layer name: factor c} for the tensors that moved.
    """
    graph = read_graph(model)
    writer = {key: index for index, step in enumerate(graph.steps) for key in step.outputs}
    rng = np.random.default_rng(seed)
    factors, done = {}, set()
    for index, step in enumerate(graph.steps):
        if index in done or not hasattr(step.layer, "linear"):
            continue
        group = scale_group(graph, writer, step.outputs[0])
        low_bit = group.low_bit() if group else []
        if not low_bit:
            continue
        done |= set(group.producers)
        values = [_subsample(v, rng) for v in _float_outputs(model, data, graph, group, low_bit)]
        alpha = best_clip(values, relu6_levels_bits(graph.steps[low_bit[0]].layer.output_range))
        if alpha <= 0.0:
            continue
        factor = RELU6_LIMIT / alpha
        _move(group, factor)
        factors.update({layer.name: factor for layer in group.producers.values()})
    return factors


def scale_group(graph, writer: dict, key: int) -> Optional[ScaleGroup]:
    """The `ScaleGroup` of tensor `key`, or None when a tensor in it cannot move: one that
    a model input, an unscalable layer or any other op writes, or that a model output or
    another op reads."""
    group, seen, todo = ScaleGroup(), set(), [key]
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        if graph.is_output(key) or key not in writer:
            return None
        for i in [writer[key], *graph.consumers(key)]:
            step = graph.steps[i]
            kind = LAYER_KINDS.get(type(step.layer).__name__)
            if hasattr(step.layer, "linear") and step.inputs == [key]:
                group.consumers[i] = step.layer
            elif hasattr(step.layer, "linear") and step.outputs == [key] and _scalable(step.layer):
                group.producers[i] = step.layer
            elif kind == SAME_SCALE or isinstance(step.layer, _PASSES):
                group.passes[i] = step.layer
                todo += step.inputs + step.outputs
            else:
                return None
    return group


def _scalable(layer) -> bool:
    """Whether `layer`'s output can be scaled by its own weights: gamma with beta, or,
    without BatchNorm, kernel with bias."""
    bn = layer.batch_norm
    return bn is None or bn.get("scale", True)


def _move(group: ScaleGroup, factor: float) -> None:
    """Multiply the group's tensors by `factor`: producers' outputs and learned ranges up,
    consumers' kernels down."""
    for layer in group.producers.values():
        _scale_output(layer, factor)
    for layer in [*group.producers.values(), *group.passes.values()]:
        quantizer = getattr(layer, "output_quant", None)
        if quantizer is not None and quantizer.fixed_range is None:
            quantizer.range_min.assign(quantizer.range_min * factor)
            quantizer.range_max.assign(quantizer.range_max * factor)
    for layer in group.consumers.values():
        layer.kernel.assign(layer.kernel / factor)
    for layer in [*group.producers.values(), *group.consumers.values()]:
        layer.initialize_low_bit()


def _scale_output(layer, factor: float) -> None:
    if layer.batch_norm is None:
        layer.kernel.assign(layer.kernel * factor)
        if layer.use_bias:
            layer.bias.assign(layer.bias * factor)
        return
    layer.gamma.assign(layer.gamma * factor)
    if layer.batch_norm.get("center", True):
        layer.beta.assign(layer.beta * factor)


def _float_outputs(model: keras.Model, data: np.ndarray, graph, group: ScaleGroup,
                   indexes: list) -> list:
    """The float (unquantized) outputs on `data` of the steps `indexes` of `group`: each
    producer's activation of its conv/dense on its input as the model quantizes it, each
    Add's activation of the sum of its inputs' float values, pooling applied to them."""
    producers = list(group.producers.items())
    probe = keras.Model(model.input, [graph.steps[i].node.input_tensors[0] for i, _ in producers])
    inputs = keras.tree.flatten(probe.predict(data, verbose=0))
    values = {}
    for (i, layer), x in zip(producers, inputs):
        kernel, bias = layer.folded_kernel_and_bias()
        values[graph.steps[i].outputs[0]] = ACTIVATIONS[layer.activation](
            layer.linear(ops.convert_to_tensor(x), kernel) + bias)
    for i in sorted(group.passes):
        step = graph.steps[i]
        if not all(key in values for key in step.inputs):
            continue  # after a pooled mean: no low-bit tensor needs it
        if isinstance(step.layer, QuantAdd):
            total = sum(values[key] for key in step.inputs)
            values[step.outputs[0]] = ACTIVATIONS[step.layer.activation](total)
        else:
            values[step.outputs[0]] = step.layer(values[step.inputs[0]], training=False)
    return [np.asarray(ops.convert_to_numpy(values[graph.steps[i].outputs[0]]), np.float32).ravel()
            for i in indexes]


def _subsample(values: np.ndarray, rng) -> np.ndarray:
    return rng.choice(values, _SAMPLE, replace=False) if values.size > _SAMPLE else values
