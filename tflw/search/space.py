"""What `fit_board` may change in a model, and what each change costs in flash, RAM and MACs.

The knobs are those tflw ships: each Conv2D/DepthwiseConv2D/Dense layer's weight bits (below
8 only where the runtime has DECODE, which expands LUT-compressed weights), and each
channel group's keep ratio (channel pruning, physically removed by `strip_pruning`).

```python
space = read_space(model, bits=(8, 4, 2), keeps=(1.0, 0.75, 0.5, 0.25))
space.layers[0].flash(bits=4, keep_in=1.0, keep_out=0.5)   # bytes, estimated
space.groups                                                # {"conv2d": 16, ...}
```

Costs are estimates to steer the search: bytes of int8 (or k-bit packed) kernels plus
per-channel bias and quantization parameters, and the largest sum of int8 activations
alive at one op. `fit_board` calibrates both against one measured export and then
checks every returned model in measured bytes.
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np

from tflw.model_graph import read_graph
from tflw.pruning.channel_groups import PASS_THROUGH, PRODUCERS, channel_groups

WEIGHTED = ("Conv2D", "DepthwiseConv2D", "Dense")
# Folded into the op before them by the converter: no tensor of their own in the arena.
FUSED = ("BatchNormalization", "ReLU", "Activation", "Dropout")
# Bias (int32) plus the weight's and the bias's per-channel scale (float32) and zero point
# (int64) in the flatbuffer.
CHANNEL_BYTES = 4 + 2 * (4 + 8)


def kept(channels: int, keep: float) -> int:
    """Channels left when a group keeps `keep` of them (pruning rounds the pruned count down)."""
    return channels - int(round((1.0 - keep) * channels, 9))


@dataclass(frozen=True)
class WeightLayer:
    """A Conv2D, DepthwiseConv2D or Dense layer.

    Attributes:
        name, kind: the layer.
        kernel: spatial kernel size (kh * kw; 1 for Dense).
        in_channels, out_channels: as built.
        positions: output positions (h * w; 1 for Dense), for MACs.
        in_group, out_group: searchable channel groups of its input and output, or None.
    """

    name: str
    kind: str
    kernel: int
    in_channels: int
    out_channels: int
    positions: int
    in_group: Optional[str]
    out_group: Optional[str]

    def shape(self, keep_in: float, keep_out: float) -> Tuple[int, int]:
        """(weights, output channels) with those keep ratios."""
        out = kept(self.out_channels, keep_out)
        if self.kind == "DepthwiseConv2D":  # one filter per output channel
            return self.kernel * out, out
        return self.kernel * kept(self.in_channels, keep_in) * out, out

    def flash(self, bits: int, keep_in: float, keep_out: float) -> int:
        """Bytes in flash: k-bit indices and one table of 2^k entries per channel below 8
        bits (as `tflw.export.lut` lays them out), the int8 kernel otherwise."""
        weights, out = self.shape(keep_in, keep_out)
        kernel = weights if bits >= 8 else math.ceil(weights * bits / 8) + out * 2**bits
        return kernel + out * CHANNEL_BYTES

    def macs(self, keep_in: float, keep_out: float) -> int:
        return self.positions * self.shape(keep_in, keep_out)[0]


@dataclass(frozen=True)
class Activation:
    """A tensor the arena holds: the layer that makes it, its int8 bytes as built, its
    channel group, and the op steps it is alive for (made at `first`, last read at `last`)."""

    producer: str
    nbytes: int
    group: Optional[str]
    first: int
    last: int


@dataclass(frozen=True)
class SearchSpace:
    """The knobs of one model and what they change.

    Attributes:
        layers: the weighted layers, in graph order.
        groups: searchable channel group name -> its channel count.
        activations: the arena's tensors; `steps` op steps index their lifetimes.
        bits: weight bit options (8 alone without DECODE); keeps: channel keep ratios.
        layer_op: each weighted layer's op step (where a DECODE'd kernel is alive).
    """

    layers: Tuple[WeightLayer, ...]
    groups: Dict[str, int]
    activations: Tuple[Activation, ...]
    steps: int
    bits: Tuple[int, ...]
    keeps: Tuple[float, ...]
    layer_op: Dict[str, int]

    @property
    def op_steps(self) -> range:
        """Every step at which the arena is counted: before the first op, each op, after."""
        return range(-1, self.steps + 1)


def _group_of_producer(groups) -> Dict[str, str]:
    return {scorer: group.name for group in groups if group.frozen is None
            for scorer in group.masked.values() if scorer}


def read_space(model: keras.Model, bits: Sequence[int] = (8,),
               keeps: Sequence[float] = (1.0,)) -> SearchSpace:
    """The search space of `model`.

    Args:
        model: a float Keras 3 Functional or Sequential model.
        bits: weight bit options for every weighted layer (8 first).
        keeps: channel keep ratios for every searchable channel group (1.0 first).
    """
    graph = read_graph(model)
    prunable = {s.layer.name for s in graph.steps if type(s.layer).__name__ in PRODUCERS}
    groups = channel_groups(graph, prunable)
    producer_group = _group_of_producer(groups)
    tensor_group: Dict[int, Optional[str]] = {key: None for key in graph.inputs}
    canonical: Dict[int, int] = {}
    sizes = {key: int(np.prod(tuple(t.shape)[1:]))
             for key, t in zip(graph.inputs, graph.input_tensors)}
    first: Dict[int, int] = {key: -1 for key in graph.inputs}
    producer: Dict[int, str] = {key: t.name for key, t in zip(graph.inputs, graph.input_tensors)}
    last: Dict[int, int] = {}
    layers: List[WeightLayer] = []
    channels: Dict[str, int] = {}
    layer_op: Dict[str, int] = {}
    op = 0
    for step in graph.steps:
        layer, kind = step.layer, type(step.layer).__name__
        inputs = [canonical.get(k, k) for k in step.inputs]
        in_group = tensor_group.get(inputs[0]) if inputs else None
        if kind in PRODUCERS:
            out_group = producer_group.get(layer.name)
        elif kind in PASS_THROUGH or kind == "Add":
            out_group = in_group
        else:
            out_group = None
        out_key = step.outputs[0]
        tensor_group[out_key] = out_group
        if kind in FUSED and len(inputs) == 1:
            canonical[out_key] = inputs[0]
            continue
        for key in inputs:
            last[key] = op
        shape = tuple(step.node.outputs[0].shape)[1:]
        sizes[out_key] = int(np.prod(shape))
        first[out_key] = op
        producer[out_key] = layer.name
        if out_group is not None:
            channels[out_group] = int(shape[-1])
        if kind in WEIGHTED:
            in_shape = tuple(step.node.input_tensors[0].shape)[1:]
            kernel = layer.get_config().get("kernel_size", (1,))
            layers.append(WeightLayer(
                layer.name, kind, int(np.prod(kernel)), int(in_shape[-1]), int(shape[-1]),
                int(np.prod(shape[:-1])), in_group, out_group))
            layer_op[layer.name] = op
        op += 1
    for key in graph.outputs:
        last[canonical.get(key, key)] = op
    activations = tuple(
        Activation(producer[key], sizes[key], tensor_group.get(key), first[key],
                   last.get(key, first[key]))
        for key in first)
    return SearchSpace(tuple(layers), channels, activations, op, tuple(bits), tuple(keeps),
                       layer_op)
