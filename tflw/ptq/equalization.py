"""Cross-layer equalization: rescale the channels between two consecutive layers so that
each channel's weights span the same range in both, leaving the float model's function
unchanged (Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias
Correction", ICCV 2019, section 4.1).

A depthwise layer's channels often differ in range by orders of magnitude, and one int8
scale per channel of the *next* layer's input cannot follow them: the converter's
post-training quantization loses most on MobileNet-style networks for that reason. For
ReLU, relu(x / s) = relu(x) / s (s > 0), so output channel i of the first layer can be
divided by s_i and input channel i of the second multiplied by it;
s_i = sqrt(r1_i / r2_i) makes both ranges sqrt(r1_i r2_i).

```python
equalized, pairs = equalize(model)     # a copy; `pairs` names each (first, second) layer
```
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import keras
import numpy as np

# Channel-wise layers that commute with a positive per-channel scale, when linear in it.
_PASS_THROUGH = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
                 keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D,
                 keras.layers.Dropout, keras.layers.ZeroPadding2D)
ROUNDS = 20
TOLERANCE = 1e-4


def _consumers(layer: keras.layers.Layer) -> list:
    return [node.operation for node in layer._outbound_nodes]


def _is_relu(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return (layer.max_value is None and float(layer.negative_slope) == 0.0
                and float(layer.threshold) == 0.0)
    return (isinstance(layer, keras.layers.Activation)
            and getattr(layer.activation, "__name__", "") == "relu")


def _np(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable))


def _is_depthwise(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.DepthwiseConv2D) and layer.depth_multiplier == 1


def _first(layer: keras.layers.Layer) -> bool:
    return _second(layer) and layer.activation.__name__ in ("relu", "linear")


def _second(layer: keras.layers.Layer) -> bool:
    """A weighted layer whose input channels each have weights of their own."""
    return (_is_depthwise(layer) or isinstance(layer, keras.layers.Dense)
            or (isinstance(layer, keras.layers.Conv2D) and layer.groups == 1))


@dataclass
class Pair:
    """Two weighted layers with channel-wise layers between them (a depthwise `second`
    takes channel i in and gives it out: its kernel's channel i is its input channel)."""

    first: keras.layers.Layer
    between: list
    second: keras.layers.Layer


def _chain(first: keras.layers.Layer, outputs: set) -> Optional[Tuple[list, keras.layers.Layer]]:
    """(the channel-wise layers between, the weighted layer) where `first`'s output reaches
    exactly one weighted layer through layers a positive channel scale passes."""
    between, layer = [], first
    while True:
        consumers = _consumers(layer)
        if len(consumers) != 1 or layer.name in outputs:
            return None
        layer = consumers[0]
        if _second(layer):
            return between, layer
        channel_wise_bn = (isinstance(layer, keras.layers.BatchNormalization)
                           and layer.axis in (-1, len(layer.input.shape) - 1))
        if not (channel_wise_bn or _is_relu(layer) or isinstance(layer, _PASS_THROUGH)):
            return None
        between.append(layer)


def _kernel_scale(batch_norm: Optional[keras.layers.BatchNormalization]) -> np.ndarray:
    """The per-channel factor a BatchNorm right after a layer folds into its kernel."""
    if batch_norm is None:
        return np.ones(())
    scale = 1.0 / np.sqrt(_np(batch_norm.moving_variance) + batch_norm.epsilon)
    return scale * _np(batch_norm.gamma) if batch_norm.scale else scale


def _folded_bn(layer: keras.layers.Layer) -> Optional[keras.layers.BatchNormalization]:
    """The BatchNorm that quantization folds into `layer` (right after it, no activation
    between), or None."""
    consumers = _consumers(layer)
    if (layer.activation.__name__ == "linear" and len(consumers) == 1
            and isinstance(consumers[0], keras.layers.BatchNormalization)):
        return consumers[0]
    return None


def _input_axis(layer: keras.layers.Layer) -> int:
    return 0 if isinstance(layer, keras.layers.Dense) else 2


def _output_ranges(layer: keras.layers.Layer) -> np.ndarray:
    """Largest weight magnitude per output channel, its BatchNorm folded in."""
    kernel = _np(layer.kernel)
    if _is_depthwise(layer):
        kernel = kernel[..., 0]
    folded = kernel * _kernel_scale(_folded_bn(layer))
    return np.abs(folded).reshape(-1, folded.shape[-1]).max(0)


def _ranges(pair: Pair) -> Tuple[np.ndarray, np.ndarray]:
    """Per channel: the first layer's output weights' and the second layer's input
    weights' largest magnitude, each with its BatchNorm folded in (what is quantized)."""
    second = pair.second
    if _is_depthwise(second):
        return _output_ranges(pair.first), _output_ranges(second)
    kernel = _np(second.kernel) * _kernel_scale(_folded_bn(second))
    axis = _input_axis(second)
    return _output_ranges(pair.first), np.abs(np.moveaxis(kernel, axis, -1)).reshape(
        -1, kernel.shape[axis]).max(0)


def _scale_output(layer: keras.layers.Layer, between: list, scale: np.ndarray) -> None:
    """Output channel i of `layer`, and what carries it to the next weighted layer, times
    scale_i."""
    kernel = _np(layer.kernel)
    layer.kernel.assign(kernel * (scale[:, None] if _is_depthwise(layer) else scale))
    if layer.use_bias:
        layer.bias.assign(_np(layer.bias) * scale)
    for step in between:
        if isinstance(step, keras.layers.BatchNormalization):
            # BN(x s) = BN(x) s with the mean and the shift scaled too (gamma and the
            # variance stay: the normalization divides by the same sqrt(var + eps)).
            step.moving_mean.assign(_np(step.moving_mean) * scale)
            if step.center:
                step.beta.assign(_np(step.beta) * scale)


def _scale_input(layer: keras.layers.Layer, scale: np.ndarray) -> None:
    shape = [1] * len(layer.kernel.shape)
    shape[_input_axis(layer)] = -1
    layer.kernel.assign(_np(layer.kernel) * scale.reshape(shape))


def _rescale(pair: Pair, scale: np.ndarray) -> None:
    """Output channel i of the first layer divided by scale_i, input channel i of the
    second multiplied by it."""
    _scale_output(pair.first, pair.between, 1.0 / scale)
    _scale_input(pair.second, scale)


def equalization_pairs(model: keras.Model) -> List[Pair]:
    """Every pair `equalize` rescales."""
    outputs = {tensor._keras_history[0].name for tensor in model.outputs}
    pairs = []
    for layer in model.layers:
        if not _first(layer):
            continue
        chain = _chain(layer, outputs)
        if chain is not None:
            pairs.append(Pair(layer, *chain))
    return pairs


def equalize(model: keras.Model) -> Tuple[keras.Model, List[Tuple[str, str]]]:
    """A copy of float `model` with every ReLU-connected pair of weighted layers
    equalized (rounds until no scale moves by `TOLERANCE`); returns it and the pairs'
    names. The copy computes the same function (to float rounding)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    pairs = equalization_pairs(copy)
    for _ in range(ROUNDS):
        largest = 0.0
        for pair in pairs:
            r1, r2 = _ranges(pair)
            scale = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.maximum(r2, 1e-30)), 1.0)
            _rescale(pair, scale.astype(np.float32))
            largest = max(largest, float(np.abs(np.log(scale)).max(initial=0.0)))
        if largest < TOLERANCE:
            break
    return copy, [(pair.first.name, pair.second.name) for pair in pairs]
