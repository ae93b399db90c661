"""Put each low-bit activation where its fixed 2^k levels cover it best, by rescaling weights.

A k-bit activation clips at 6 (`tflw.quantization.low_bit_activations`), but a float
model's ReLU outputs may span [0, 0.5] or [0, 40]: at 2 bits the first all round to 0.
ReLU, pooling and Add commute with a positive factor c, so multiplying a tensor's
producers by c (a folded BatchNorm's gamma and beta, or a kernel and bias) and dividing
its consumers' kernels by c leaves the float model's function unchanged, while the
quantizer now clips the tensor at alpha* = 6 / c: the clipping level of least squared
quantization error on calibration data.

Tensors joined by an Add must move together, since an Add needs both addends and the
sum on one factor. So tensors are grouped (an Add joins its inputs and output; pooling,
padding, reshape and dropout join theirs), and each group gets one factor, the clip of
least error summed over its low-bit tensors. In a ResNet, a group is a stage's whole
residual stream, from the stem or the shortcut conv that opens it to the convs that read
it. A group touching the model's inputs or outputs, or any layer that does not commute
with c (a Concatenate, a Multiply, a softmax), keeps its scale.

```python
qat = tflw.quantize_model(model, activation_bits=2)
tflw.calibrate(qat, x_train[:512])
balance_activations(qat, x_train[:512])   # quantize_model does both given calibration_data
tflw.calibrate(qat, x_train[:512])
```
"""

from dataclasses import dataclass, field
from typing import Sequence

import keras
import numpy as np
from keras import ops

from tflw.model_graph import Graph, read_graph
from tflw.quantization.low_bit_activations import RELU6_LIMIT, relu6_levels_bits

# Values kept per tensor for the clipping-level search; more changes alpha* by well under 1 %.
_SAMPLE = 200_000
# Clipping levels tried: these quantiles of the positive values (1.0: the maximum).
_CANDIDATES = np.linspace(0.5, 1.0, 101)
# Layers f with f(c x) = c f(x) for c > 0, after quantize_model.
_HOMOGENEOUS = {"MaxPooling2D", "QuantAveragePooling2D", "QuantGlobalAveragePooling2D",
                "Flatten", "Reshape", "Permute", "ZeroPadding2D", "Dropout"}
# Calibration images per forward pass: the ReLU outputs are sampled batch by batch.
_BATCH = 64


def best_clip(tensors: Sequence[tuple]) -> float:
    """The one clipping level alpha of least total relative squared error for ReLU outputs
    quantized to 2^k uniform levels {0, alpha / n, ..., alpha}, n = 2^k - 1, given as
    `(values, k)` pairs; 0 when all values are 0.

        alpha* = argmin_alpha sum_t mean((x_t - q_t(x_t))^2) / mean(x_t^2),
        q_t(x) = alpha/n_t * round(clip(x, 0, alpha) * n_t / alpha),
        alpha over the 50th to 100th percentiles of all the positive x
    """
    positive = np.concatenate([values[values > 0] for values, _ in tensors])
    if positive.size == 0:
        return 0.0
    alphas = np.quantile(positive, _CANDIDATES)

    def error(alpha: float) -> float:
        total = 0.0
        for values, bits in tensors:
            steps = 2 ** bits - 1
            quantized = np.round(np.clip(values, 0, alpha) * steps / alpha) * alpha / steps
            total += np.mean((values - quantized) ** 2) / max(np.mean(values ** 2), 1e-30)
        return total
    return float(alphas[int(np.argmin([error(alpha) for alpha in alphas]))])


@dataclass
class _Group:
    """Tensors on one factor: the steps writing them, the layers reading them."""

    producers: list = field(default_factory=list)     # tflw linear layers and QuantAdds
    homogeneous: list = field(default_factory=list)   # pooling, reshape, ... inside
    consumers: list = field(default_factory=list)     # tflw linear layers
    movable: bool = True

    def low_bit(self) -> list:
        return [step for step in self.producers if step.layer.output_range is not None]


def balance_activations(model: keras.Model, data: np.ndarray, seed: int = 0) -> dict:
    """Rescale the weights around each group of low-bit activations of a calibrated tflw
    quantization-aware `model` (see the module docstring), all groups at once, from one
    forward pass. The learned int8 ranges inside a group move with it; calibrate again
    afterwards all the same, as the ranges downstream shift a little.

    Returns:
        {producer layer name: factor c} for the tensors that moved.
    """
    rng = np.random.default_rng(seed)
    graph = read_graph(model)
    groups = _groups(graph)
    factors = {}
    # One reading for all groups: reading again after moving converges to lower clips
    # (closer to each tensor's least error alone), which measured worse for the model: on
    # ResNet-20 at A2, relative logit error 0.32, 0.43, 0.51 after 1, 2, 3 readings.
    for group, tensors in zip(groups, _relu_samples(model, graph, groups, data, rng)):
        alpha = best_clip(tensors)
        if alpha > 0.0:
            _move(group, RELU6_LIMIT / alpha)
            factors.update((step.layer.name, RELU6_LIMIT / alpha) for step in group.producers)
    return factors


def _groups(graph: Graph) -> list:
    """The movable groups with a low-bit tensor, in the order of their first producer."""
    root = {}

    def find(key: int) -> int:
        while root.setdefault(key, key) != key:
            key = root[key]
        return key

    def join(keys) -> None:
        first, *rest = [find(key) for key in keys]
        for other in rest:
            root[other] = first
    for step in graph.steps:
        if _kind(step) in ("add", "homogeneous"):
            join([*step.inputs, *step.outputs])
    groups = {}

    def group_of(key: int) -> _Group:
        return groups.setdefault(find(key), _Group())
    for key in (*graph.inputs, *graph.outputs):
        group_of(key).movable = False
    for step in graph.steps:
        kind = _kind(step)
        if kind == "homogeneous":
            group_of(step.outputs[0]).homogeneous.append(step)
        elif kind in ("add", "linear"):
            group_of(step.outputs[0]).producers.append(step)
        else:
            for key in (*step.inputs, *step.outputs):
                group_of(key).movable = False
        if kind == "linear":
            group_of(step.inputs[0]).consumers.append(step.layer)
    return [group for group in groups.values() if group.movable and group.low_bit()]


def _kind(step) -> str:
    """How a step meets a factor c on its input: 'linear' (divides its kernel by c, scales
    its output by its own weights), 'add', 'homogeneous' (passes c on), or 'fixed'."""
    layer, name = step.layer, type(step.layer).__name__
    if name in _HOMOGENEOUS and len(step.inputs) == 1:
        return "homogeneous"
    homogeneous_activation = getattr(layer, "activation", None) in ("linear", "relu") or (
        getattr(layer, "output_range", None) is not None)
    if name == "QuantAdd" and homogeneous_activation:
        return "add"
    if hasattr(layer, "linear") and len(step.inputs) == 1 and homogeneous_activation and (
            layer.batch_norm is None or layer.batch_norm.get("scale", True)):
        return "linear"
    return "fixed"


def _move(group: _Group, factor: float) -> None:
    """Scale the group's tensors by `factor`: producers' outputs and learned ranges up,
    consumers' kernels down."""
    for step in (*group.producers, *group.homogeneous):
        quantizer = getattr(step.layer, "output_quant", None)
        if quantizer is not None and quantizer.fixed_range is None:
            quantizer.range_min.assign(quantizer.range_min * factor)
            quantizer.range_max.assign(quantizer.range_max * factor)
        if hasattr(step.layer, "linear"):
            _scale_output(step.layer, factor)
    for consumer in group.consumers:
        consumer.kernel.assign(consumer.kernel / factor)
    for layer in {id(layer): layer for layer in (
            *[step.layer for step in group.producers], *group.consumers)}.values():
        if hasattr(layer, "initialize_low_bit"):
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


def _relu_samples(model: keras.Model, graph: Graph, groups: list, data: np.ndarray,
                  rng: np.random.Generator) -> list:
    """For each group, `(values, bits)` for each low-bit producer: a sample of its float
    ReLU output on `data` (its inputs as the model quantizes them), from one forward pass."""
    low_bit = {id(step) for group in groups for step in group.low_bit()}
    steps = [step for step in graph.steps if id(step) in low_bit]
    tensors = {id(t): t for step in steps for t in step.node.input_tensors}
    reader = keras.Model(model.inputs, list(tensors.values()))
    per_batch = -(-_SAMPLE * _BATCH // len(data))
    samples = {id(step): [] for step in steps}
    for start in range(0, len(data), _BATCH):
        values = reader.predict_on_batch(data[start:start + _BATCH])
        values = dict(zip(tensors, values if len(tensors) > 1 else [values]))
        for step in steps:
            outputs = _relu_output(step, [values[id(t)] for t in step.node.input_tensors])
            take = min(per_batch, outputs.size)
            samples[id(step)].append(
                rng.choice(outputs, take, replace=False) if take < outputs.size else outputs)
    return [[(np.concatenate(samples[id(step)]), relu6_levels_bits(step.layer.output_range))
             for step in group.low_bit()] for group in groups]


def _relu_output(step, inputs: list) -> np.ndarray:
    """A producer's float ReLU output for its `inputs`, flat."""
    inputs = [ops.convert_to_tensor(np.asarray(x)) for x in inputs]
    if hasattr(step.layer, "linear"):
        kernel, bias = step.layer.folded_kernel_and_bias()
        summed = step.layer.linear(inputs[0], kernel) + bias
    else:
        summed = sum(inputs[1:], inputs[0])
    return np.asarray(ops.convert_to_numpy(ops.relu(summed)), np.float32).ravel()
