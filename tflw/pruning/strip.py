"""`strip_pruning`: plain Keras layers with the pruning baked in.

Kernel masks become zeros in the kernels. Channel masks become a smaller model: the
pruned filters, their BatchNorm entries, the matching depthwise channels and the matching
input channels of the next Conv2D/Dense are cut out, so the exported model really has
fewer MACs and bytes, and computes the same function as the masked model.

```python
small = tflw.strip_pruning(pruned)
small.count_params() < model.count_params()
```
"""

from typing import Optional

import keras
import numpy as np

from tflw.model_graph import Graph, Step, call_like, clone_layer, read_graph, replay
from tflw.pruning.wrappers import ChannelMasked, PruneLowMagnitude, kernel_variable

# Weights cut along the input axis (-2 of a Conv2D/Dense kernel) or the channel axis.
_SIZE_KEY = {"Conv2D": "filters", "Dense": "units"}


def _inner(layer):
    return layer.layer if isinstance(layer, (PruneLowMagnitude, ChannelMasked)) else layer


def _weights(layer) -> list:
    """The inner layer's weights, with a kernel mask multiplied in."""
    inner = _inner(layer)
    weights = [keras.ops.convert_to_numpy(v) for v in inner.weights]
    if isinstance(layer, PruneLowMagnitude):
        kernel = kernel_variable(inner)
        index = [v is kernel for v in inner.weights].index(True)
        weights[index] = weights[index] * keras.ops.convert_to_numpy(layer.mask)
    return weights


def _block_mask(graph: Graph, step: Step) -> Optional[np.ndarray]:
    """The channel mask of the block that `step` starts (its own, or its BatchNorm's)."""
    if isinstance(step.layer, ChannelMasked):
        return keras.ops.convert_to_numpy(step.layer.mask)
    consumers = graph.consumers(step.outputs[0])
    if len(consumers) == 1 and isinstance(graph.steps[consumers[0]].layer, ChannelMasked):
        return keras.ops.convert_to_numpy(graph.steps[consumers[0]].layer.mask)
    return None


def _sliced_layer(inner, weights: list, in_kept, out_kept):
    """A copy of `inner` keeping input channels `in_kept` and output channels `out_kept`
    (None: all), with its weights cut to match."""
    kind = type(inner).__name__
    config = inner.get_config()
    new_weights = []
    for variable, value in zip(inner.weights, weights):
        if variable.name == "kernel" and kind in _SIZE_KEY:
            value = value if in_kept is None else np.take(value, in_kept, axis=-2)
            value = value if out_kept is None else np.take(value, out_kept, axis=-1)
        elif variable.name == "kernel":  # depthwise: (h, w, channels, multiplier)
            value = value if out_kept is None else np.take(value, out_kept, axis=-2)
        elif out_kept is not None:
            value = np.take(value, out_kept, axis=-1)
        new_weights.append(value)
    if kind in _SIZE_KEY and out_kept is not None:
        config[_SIZE_KEY[kind]] = len(out_kept)
    return type(inner).from_config(config), new_weights


def strip_pruning(model: keras.Model) -> keras.Model:
    """Return `model` without pruning wrappers: masks baked in, pruned channels removed.

    Args:
        model: a model from `prune_model` (trained with `UpdatePruningStep`).

    Returns:
        A plain Keras model (no tflw layers) ready for `quantize_model` or `export`.

    Example:
        >>> small = tflw.strip_pruning(pruned)
    """
    graph = read_graph(model)
    kept: dict = {}  # tensor key -> kept channel indices (None: all)

    def rebuild(step: Step, tensors: list):
        layer, inner = step.layer, _inner(step.layer)
        kind = type(inner).__name__
        in_kept = kept.get(step.inputs[0]) if step.inputs else None
        out_kept = in_kept  # channels pass through; an Add's inputs share one mask
        if kind in _SIZE_KEY:
            mask = _block_mask(graph, step)
            out_kept = None if mask is None else np.flatnonzero(mask)
        if layer is inner and in_kept is None and out_kept is None:
            new = clone_layer(layer)
            output = call_like(step, new, tensors)
        else:
            new, weights = _sliced_layer(inner, _weights(layer), in_kept, out_kept)
            output = call_like(step, new, tensors)
            new.set_weights(weights)
        kept[step.outputs[0]] = out_kept
        return output

    return replay(model, rebuild)
