"""Shift convolution (Wu et al., "Shift: A Zero FLOP, Zero Parameter Alternative to Spatial
Convolutions", CVPR 2018): each channel group moves one pixel in one of the nine directions
of a 3x3 window, and a 1x1 convolution mixes them; the shift itself costs no MAC and no
weight.

`Shift` runs on the device as PAD + one STRIDED_SLICE per direction + CONCATENATION, all of
which keep the input's int8 scale: the shifted tensor is an exact copy of the input's
codes, moved.

```python
x = Shift()(x)                        # channels in nine groups, one per direction
x = shift_block(x, 32, name="shift1") # shift -> 1x1 conv -> BN -> ReLU
x = shift_residual_block(x, 32, expansion=3, name="csc1")  # ShiftResNet's block
```
"""

import keras

from tflw.models.blocks import conv_bn_relu

ops = keras.ops

# The nine moves of a 3x3 window, (rows, columns); the centre one leaves its group in place.
DIRECTIONS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


@keras.saving.register_keras_serializable(package="tflw")
class Shift(keras.layers.Layer):
    """Moves channel group k by `DIRECTIONS[k]` (one pixel, zeros shifted in): output[i, j]
    of a group moved by (dy, dx) is input[i - dy, j - dx]. The channels split into nine
    groups as evenly as they go, the first groups one channel larger."""

    def call(self, inputs):
        channels = inputs.shape[-1]
        height, width = inputs.shape[1], inputs.shape[2]
        padded = ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
        bounds = _group_bounds(channels)
        pieces = [padded[:, 1 - dy:1 - dy + height, 1 - dx:1 - dx + width, start:stop]
                  for (dy, dx), (start, stop) in zip(DIRECTIONS, bounds) if stop > start]
        return ops.concatenate(pieces, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape


def _group_bounds(channels: int) -> list:
    """(start, stop) of each of the nine channel groups."""
    size, extra = divmod(channels, len(DIRECTIONS))
    bounds, start = [], 0
    for group in range(len(DIRECTIONS)):
        stop = start + size + (1 if group < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def shift_block(x, filters: int, strides=1, name: str = "shift"):
    """ShiftNet's module: shift, then a 1x1 convolution (carrying the stride), BatchNorm,
    ReLU: a 3x3 receptive field for the parameters and MACs of a 1x1 convolution."""
    x = Shift(name=f"{name}_shift")(x)
    return conv_bn_relu(x, filters, 1, strides=strides, name=f"{name}_pw")


def shift_residual_block(x, filters: int, strides=1, expansion: int = 3, name: str = "csc"):
    """ShiftResNet's block (Wu et al. 2018, the CSC module in a residual block): 1x1 to
    `filters * expansion` -> BN -> ReLU, shift, 1x1 to `filters` (carrying the stride) ->
    BN, added to the input (through a 1x1 projection where the shape changes), ReLU."""
    y = conv_bn_relu(x, filters * expansion, 1, name=f"{name}_expand")
    y = Shift(name=f"{name}_shift")(y)
    y = conv_bn_relu(y, filters, 1, strides=strides, activation=None, name=f"{name}_project")
    shortcut = x
    if strides != 1 or int(x.shape[-1]) != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, name=f"{name}_shortcut")(x)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_relu")(y)
