"""A `Rescaling` that feeds a convolution or dense layer, folded into that layer's weights.

Keras models often start with `Rescaling(1 / 255)`. The converter's post-training
quantization folds the multiply into the next convolution; kept as a layer of the quantized
model it became a MUL op with an int8 tensor and a range of its own (measured on the suite's
all-layers model: 576 B of flash more than the converter). Folded, the model's input
quantizer sees the unscaled inputs and the first layer's weights carry the scale, as in the
converter's model.

```python
model = fold_rescaling(model)  # the same function; no Rescaling before a linear layer
```
"""

from typing import Optional, Tuple

import keras
import numpy as np

from tflw.model_graph import Graph, Step, call_like, clone_layer, read_graph, replay

_LINEAR = ("Conv2D", "DepthwiseConv2D", "Dense")


def fold_rescaling(model: keras.Model) -> keras.Model:
    """`model`, or a copy computing the same function in which every `Rescaling` read only
    by a Conv2D, DepthwiseConv2D or Dense layer is folded into that layer's kernel (and,
    for an offset, its bias). Folded only where exact: a scale per tensor or per input
    channel, and an offset only where the layer pads nothing and has a bias (a 'same'
    padding's zeros would take no offset). Called by `tflw.quantize_model`."""
    graph = read_graph(model)
    dropped = set()  # the folded Rescalings' ids
    folds = {}  # the linear layer's id: the (scale, offset) to take in
    for step in graph.steps:
        found = _foldable(graph, step)
        if found is not None:
            consumer, scale, offset = found
            dropped.add(id(step.layer))
            folds[id(consumer.layer)] = (scale, offset)
    if not folds:
        return model

    def replace(step: Step, tensors: list):
        if id(step.layer) in dropped:
            return tensors[0]  # its consumer takes its inputs
        layer = clone_layer(step.layer)
        if id(step.layer) in folds:
            layer.set_weights(_folded(layer, *folds[id(step.layer)]))
        return call_like(step, layer, tensors)

    return replay(model, replace)


def _foldable(graph: Graph, step: Step) -> Optional[Tuple[Step, np.ndarray, np.ndarray]]:
    """(the linear step reading it, scale, offset, each per input channel) where `step` is
    a Rescaling that can be folded exactly; None otherwise."""
    if type(step.layer).__name__ != "Rescaling" or len(step.inputs) != 1:
        return None
    if "float" not in str(step.node.input_tensors[0].dtype):  # it casts integer inputs too
        return None
    consumers = graph.consumers(step.outputs[0])
    if len(consumers) != 1 or graph.is_output(step.outputs[0]):
        return None
    consumer = graph.steps[consumers[0]]
    layer = consumer.layer
    config = layer.get_config()
    shared = sum(s.layer is layer or s.layer is step.layer for s in graph.steps) > 2
    if (type(layer).__name__ not in _LINEAR or shared or config.get("groups", 1) != 1
            or config.get("data_format", "channels_last") != "channels_last"):
        return None
    channels = int(layer.get_weights()[0].shape[-2])
    scale, offset = (_per_channel(value, channels)
                     for value in (step.layer.scale, step.layer.offset))
    if scale is None or offset is None:
        return None
    if np.any(offset != 0) and (config.get("padding", "valid") != "valid"
                                or not config["use_bias"]):
        return None
    return consumer, scale, offset


def _per_channel(value, channels: int) -> Optional[np.ndarray]:
    """`value` (a Rescaling's scale or offset) as one number per input channel, or None
    where it varies over anything else (a per-pixel scale cannot move into a kernel)."""
    array = np.asarray(value, np.float32)
    if array.size == 1:
        return np.full(channels, array.item(), np.float32)
    if array.shape[-1] == channels and array.size == channels:
        return array.reshape(channels)
    return None


def _folded(layer: keras.layers.Layer, scale: np.ndarray, offset: np.ndarray) -> list:
    """The layer's weights that compute layer(x * scale + offset) from x."""
    kernel, *bias = layer.get_weights()
    if bias:  # the offset's contribution, through the unscaled kernel
        if type(layer).__name__ == "Dense":
            shift = offset @ kernel
        elif type(layer).__name__ == "DepthwiseConv2D":  # output channel c * multiplier + m
            shift = np.einsum("hwcm,c->cm", kernel, offset).reshape(-1)
        else:
            shift = np.einsum("hwco,c->o", kernel, offset)
        bias = [bias[0] + shift]
    # the input channel is the kernel's second-to-last axis for all three
    return [kernel * scale[:, None], *bias]
