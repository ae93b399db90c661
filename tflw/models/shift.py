"""Shift convolution (Wu et al., "Shift: A Zero FLOP, Zero Parameter Alternative to Spatial
Convolutions", CVPR 2018): each channel group moves one pixel in one of the nine directions
of a 3x3 window, and a 1x1 convolution mixes them; the shift itself costs no MAC and no
weight. Sparse Shift (Chen et al., "All You Need Is a Few Shifts", CVPR 2019) learns each
channel's integer shift instead, under an L1 penalty that leaves most channels in place.

`Shift` runs on the device as PAD + one STRIDED_SLICE per run of equally moved channels +
CONCATENATION, all of which keep the input's int8 scale: the shifted tensor is an exact
copy of the input's codes, moved. A trained `SparseShift` becomes such a `Shift` when the
model is quantized.

```python
x = Shift()(x)                        # channels in nine groups, one per direction
x = Shift(moves=[(0, 1), (0, 0), (-1, 0)])(x)   # one (rows, columns) move per channel
x = SparseShift(l1=1e-4)(x)           # moves learned, rounded in the forward pass
x = shift_block(x, 32, name="shift1") # shift -> 1x1 conv -> BN -> ReLU
x = shift_residual_block(x, 32, expansion=3, name="csc1")  # ShiftResNet's block
```
"""

from itertools import groupby
from typing import Optional, Sequence, Union

import keras
import numpy as np

from tflw.model_graph import Graph, Step, call_like, clone_layer, read_graph, replay
from tflw.models.blocks import conv_bn_relu

ops = keras.ops

# The nine moves of a 3x3 window, (rows, columns); the centre one leaves its group in place.
DIRECTIONS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
# TFLite-Micro's CONCATENATION takes at most ten inputs (concatenation.cc, kMaxInputNum):
# more runs are joined ten at a time, then the joins
MAX_CONCAT_INPUTS = 10


@keras.saving.register_keras_serializable(package="tflw")
class Shift(keras.layers.Layer):
    """Moves each channel by a fixed whole number of pixels, zeros shifted in: output[i, j]
    of a channel moved by (dy, dx) is input[i - dy, j - dx].

    Args:
        moves: one (dy, dx) per channel. None (the default) is ShiftNet's: the channels
            split into nine groups as evenly as they go (the first groups one channel
            larger), group k moved by `DIRECTIONS[k]`.
    """

    def __init__(self, moves: Optional[Sequence[Sequence[int]]] = None, **kwargs):
        super().__init__(**kwargs)
        self.moves = None if moves is None else [tuple(int(m) for m in move) for move in moves]

    def build(self, input_shape):
        if self.moves is not None and len(self.moves) != input_shape[-1]:
            raise ValueError(f"Shift '{self.name}' has {len(self.moves)} moves for "
                             f"{input_shape[-1]} channels: give one (dy, dx) per channel.")

    def channel_moves(self, channels: int) -> list:
        """The (dy, dx) of each channel."""
        if self.moves is not None:
            return self.moves
        return [move for move, (start, stop) in zip(DIRECTIONS, _group_bounds(channels))
                for _ in range(start, stop)]

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        moves = self.channel_moves(inputs.shape[-1])
        reach = max(max(abs(dy), abs(dx)) for dy, dx in moves)
        padded = ops.pad(inputs, [[0, 0], [reach, reach], [reach, reach], [0, 0]])
        pieces, start = [], 0
        # one slice per run of neighbouring channels that move alike: runs, not groups,
        # so that no channel is reordered (a GATHER would cost two more tensors of arena)
        for (dy, dx), run in groupby(moves):
            stop = start + len(list(run))
            pieces.append(padded[:, reach - dy:reach - dy + height,
                                 reach - dx:reach - dx + width, start:stop])
            start = stop
        while len(pieces) > 1:
            pieces = [ops.concatenate(pieces[i:i + MAX_CONCAT_INPUTS], axis=-1)
                      if len(pieces) - i > 1 else pieces[i]
                      for i in range(0, len(pieces), MAX_CONCAT_INPUTS)]
        return pieces[0]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"moves": self.moves}


@keras.saving.register_keras_serializable(package="tflw")
class SparseShift(keras.layers.Layer):
    """Sparse Shift: a learned whole-pixel shift per channel, most of them none.

    Each channel c has a real shift s_c = (dy, dx), clipped to [-reach, reach]. The forward
    pass moves the channel by round(s_c), as a depthwise convolution whose kernel is one-hot
    at the rounded move; the gradient is that of bilinear interpolation at s_c (Active Shift,
    Jeon & Kim 2018), the straight-through rule of Sparse Shift's quantization-aware shift
    learning:

        kernel = soft + stop_gradient(hard - soft),
        soft[a] = max(0, 1 - |s - (reach - a)|),  hard[a] = [round(s) == reach - a]

    An L1 penalty on s pulls channels back to no move (|s| < 0.5 rounds to 0).
    `tflw.quantize_model` replaces the layer by the `Shift` its rounded moves give: on the
    device it is slices of one tensor, an exact copy, no MAC.

    Args:
        reach: the largest move in pixels along each axis.
        l1: the L1 penalty's weight on the shifts.
        seed: for the initial shifts, uniform in [-reach, reach].

    Example:
        >>> x = keras.Input((8, 8, 16))
        >>> y = SparseShift(l1=1e-4)(x)

    References:
        Chen et al., "All You Need Is a Few Shifts: Designing Efficient Convolutional
        Neural Networks for Image Classification", CVPR 2019.
    """

    def __init__(self, reach: int = 1, l1: float = 1e-4, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.reach, self.l1, self.seed = int(reach), float(l1), seed

    def build(self, input_shape):
        self.shifts = self.add_weight(
            shape=(int(input_shape[-1]), 2), name="shifts",
            initializer=keras.initializers.RandomUniform(-self.reach, self.reach, self.seed),
            regularizer=keras.regularizers.L1(self.l1) if self.l1 else None)

    def kernel(self):
        """(2 reach + 1, 2 reach + 1, channels, 1): one-hot forward, bilinear gradient."""
        shifts = ops.clip(self.shifts, -self.reach, self.reach)
        taps = ops.cast(self.reach - ops.arange(2 * self.reach + 1), shifts.dtype)
        axes = []
        for axis in (0, 1):
            distance = ops.abs(shifts[:, axis:axis + 1] - taps[None, :])
            soft = ops.relu(1.0 - distance)
            hard = ops.cast(ops.equal(ops.round(shifts[:, axis:axis + 1]), taps[None, :]),
                            shifts.dtype)
            axes.append(soft + ops.stop_gradient(hard - soft))
        kernel = axes[0][:, :, None] * axes[1][:, None, :]      # (channels, rows, columns)
        return ops.expand_dims(ops.transpose(kernel, (1, 2, 0)), -1)

    def call(self, inputs):
        return ops.depthwise_conv(inputs, self.kernel(), padding="same")

    def compute_output_shape(self, input_shape):
        return input_shape

    def moves(self) -> np.ndarray:
        """(channels, 2) int: each channel's rounded (dy, dx)."""
        shifts = np.clip(keras.ops.convert_to_numpy(self.shifts), -self.reach, self.reach)
        return np.round(shifts).astype(np.int32)

    def moved_fraction(self) -> float:
        """The fraction of channels that move at all."""
        return float(np.mean(np.any(self.moves() != 0, axis=1)))

    def as_shift(self) -> Shift:
        """The fixed `Shift` of the rounded moves, under this layer's name."""
        return Shift(moves=self.moves().tolist(), name=self.name)

    def get_config(self):
        return super().get_config() | {"reach": self.reach, "l1": self.l1, "seed": self.seed}


def group_shift_channels(model: keras.Model) -> keras.Model:
    """`model`, or a copy computing the same function whose `SparseShift` channels are ordered
    by move: the shift then slices one run per distinct move (at most nine at reach 1)
    instead of one per run of its learned, scattered moves.

    The order is absorbed by the layers around the shift: the output channels of the
    convolution (or dense layer) that makes its input, and of the per-channel layers between
    (BatchNormalization, activations, depthwise convolutions), and the input channels of the
    convolutions that read it. A shift whose neighbours are other layers, shared, or a
    model's input or output keeps its order. Called by `tflw.quantize_model`.
    """
    if not any(isinstance(step.layer, SparseShift) for step in read_graph(model).steps):
        return model
    clones = {}

    def cloned(step: Step, tensors: list):
        if id(step.layer) not in clones:
            clones[id(step.layer)] = clone_layer(step.layer)
        return call_like(step, clones[id(step.layer)], tensors)

    copy = replay(model, cloned)
    graph = read_graph(copy)
    for step in graph.steps:
        if isinstance(step.layer, SparseShift):
            _order_by_move(graph, step)
    return copy


# Layers that act on each channel alone (elementwise activations, softmax included, commute
# with any order of the channels)
_PER_CHANNEL = ("BatchNormalization", "ReLU", "Activation", "Dropout", "DepthwiseConv2D")
_MIXING = ("Conv2D", "Dense")


def _order_by_move(graph: Graph, step: Step) -> None:
    moves = step.layer.moves()
    order = np.lexsort((moves[:, 1], moves[:, 0]))  # stable: equal moves keep their order
    if _runs(moves[order]) >= _runs(moves):
        return
    producers = _producers(graph, step.inputs[0])
    consumers = [graph.steps[index] for index in graph.consumers(step.outputs[0])]
    mixing = all(type(c.layer).__name__ in _MIXING and _plain(c.layer) for c in consumers)
    steps = [step, *consumers, *(producers or [])]
    if (not producers or not mixing or graph.is_output(step.outputs[0])
            or any(sum(s.layer is other.layer for other in graph.steps) > 1 for s in steps)):
        return
    for producer in producers:
        kind = type(producer.layer).__name__
        weights = producer.layer.get_weights()
        if kind == "DepthwiseConv2D":
            weights = [weights[0][:, :, order]] + [w[order] for w in weights[1:]]
        else:  # output channels: the last axis of every weight
            weights = [w[..., order] for w in weights]
        producer.layer.set_weights(weights)
    step.layer.shifts.assign(keras.ops.convert_to_numpy(step.layer.shifts)[order])
    for consumer in consumers:
        kernel, *rest = consumer.layer.get_weights()
        consumer.layer.set_weights([np.take(kernel, order, axis=-2), *rest])


def _producers(graph: Graph, key: int) -> Optional[list]:
    """The per-channel layers back to the convolution or dense layer that makes tensor `key`,
    each read by the next alone; None where the chain is anything else."""
    chain = []
    while True:
        made_by = [s for s in graph.steps if key in s.outputs]
        if not made_by or len(graph.consumers(key)) != 1 or graph.is_output(key):
            return None
        producer = made_by[0]
        kind = type(producer.layer).__name__
        chain.append(producer)
        if kind in _MIXING and _plain(producer.layer):
            return chain
        if kind not in _PER_CHANNEL or not _plain(producer.layer):
            return None
        key = producer.inputs[0]


def _plain(layer: keras.layers.Layer) -> bool:
    """Channels last, one group, one output per input channel: what the reordering assumes."""
    config = layer.get_config()
    return (config.get("groups", 1) == 1 and config.get("depth_multiplier", 1) == 1
            and config.get("axis", -1) in (-1, [-1], 3, [3])
            and config.get("data_format", "channels_last") == "channels_last")


def _runs(moves: np.ndarray) -> int:
    return len(list(groupby(map(tuple, moves))))


def _group_bounds(channels: int) -> list:
    """(start, stop) of each of ShiftNet's nine channel groups."""
    size, extra = divmod(channels, len(DIRECTIONS))
    bounds, start = [], 0
    for group in range(len(DIRECTIONS)):
        stop = start + size + (1 if group < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def shift_block(x, filters: int, strides=1, sparse: Union[bool, float] = False,
                name: str = "shift"):
    """ShiftNet's module: shift, then a 1x1 convolution (carrying the stride), BatchNorm,
    ReLU: a 3x3 receptive field for the parameters and MACs of a 1x1 convolution.
    `sparse`: True, or an L1 weight: the moves are learned (`SparseShift`) instead of
    ShiftNet's nine groups."""
    x = _shift_layer(sparse, f"{name}_shift")(x)
    return conv_bn_relu(x, filters, 1, strides=strides, name=f"{name}_pw")


def shift_residual_block(x, filters: int, strides=1, expansion: int = 3,
                         sparse: Union[bool, float] = False, name: str = "csc"):
    """ShiftResNet's block (Wu et al. 2018, the CSC module in a residual block): 1x1 to
    `filters * expansion` -> BN -> ReLU, shift, 1x1 to `filters` (carrying the stride) ->
    BN, added to the input (through a 1x1 projection where the shape changes), ReLU.
    `sparse`: True, or an L1 weight: the moves are learned (`SparseShift`)."""
    y = conv_bn_relu(x, filters * expansion, 1, name=f"{name}_expand")
    y = _shift_layer(sparse, f"{name}_shift")(y)
    y = conv_bn_relu(y, filters, 1, strides=strides, activation=None, name=f"{name}_project")
    shortcut = x
    if strides != 1 or int(x.shape[-1]) != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, name=f"{name}_shortcut")(x)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def _shift_layer(sparse: Union[bool, float], name: str) -> keras.layers.Layer:
    if sparse is True:
        return SparseShift(name=name)
    return SparseShift(l1=sparse, name=name) if sparse else Shift(name=name)
