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
from typing import Optional, Sequence

import keras
import numpy as np

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


def _group_bounds(channels: int) -> list:
    """(start, stop) of each of ShiftNet's nine channel groups."""
    size, extra = divmod(channels, len(DIRECTIONS))
    bounds, start = [], 0
    for group in range(len(DIRECTIONS)):
        stop = start + size + (1 if group < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def shift_block(x, filters: int, strides=1, sparse: bool = False, name: str = "shift"):
    """ShiftNet's module: shift, then a 1x1 convolution (carrying the stride), BatchNorm,
    ReLU: a 3x3 receptive field for the parameters and MACs of a 1x1 convolution.
    `sparse`: the moves are learned (`SparseShift`) instead of ShiftNet's nine groups."""
    x = _shift_layer(sparse, f"{name}_shift")(x)
    return conv_bn_relu(x, filters, 1, strides=strides, name=f"{name}_pw")


def shift_residual_block(x, filters: int, strides=1, expansion: int = 3, sparse: bool = False,
                         name: str = "csc"):
    """ShiftResNet's block (Wu et al. 2018, the CSC module in a residual block): 1x1 to
    `filters * expansion` -> BN -> ReLU, shift, 1x1 to `filters` (carrying the stride) ->
    BN, added to the input (through a 1x1 projection where the shape changes), ReLU.
    `sparse`: the moves are learned (`SparseShift`)."""
    y = conv_bn_relu(x, filters * expansion, 1, name=f"{name}_expand")
    y = _shift_layer(sparse, f"{name}_shift")(y)
    y = conv_bn_relu(y, filters, 1, strides=strides, activation=None, name=f"{name}_project")
    shortcut = x
    if strides != 1 or int(x.shape[-1]) != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, name=f"{name}_shortcut")(x)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_relu")(y)


def _shift_layer(sparse: bool, name: str) -> keras.layers.Layer:
    return SparseShift(name=name) if sparse else Shift(name=name)
