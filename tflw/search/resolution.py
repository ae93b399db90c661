"""Input resolution as a knob: the shape a model takes at a resolution multiplier, and
inputs resized to it (images bilinearly, series along time), as the device must resize them.

```python
scaled_shape((28, 28, 1), 0.75)                       # (21, 21, 1)
x_small = resize_inputs(x, scaled_shape(x.shape[1:], 0.75))
```
"""

from typing import Tuple

import keras
import numpy as np

from tflw.errors import UnsupportedModelError

BATCH = 1024


def scaled_shape(shape: Tuple[int, ...], resolution: float) -> Tuple[int, ...]:
    """`shape` (no batch axis) with every axis but the last (channels) scaled by
    `resolution`, as EfficientNet scales an image's height and width."""
    return tuple(max(1, round(size * resolution)) for size in shape[:-1]) + (shape[-1],)


def resize_inputs(x: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """`x` (batch, *axes, channels) resized to `shape`: bilinear and antialiased (an
    average over the pixels a smaller pixel covers), images over height and width, series
    (batch, steps, channels) over time.

    Raises:
        UnsupportedModelError: `x` is neither images nor series, or `shape` changes its
            channels.
    """
    x = np.asarray(x)
    shape = tuple(shape)
    if x.shape[1:] == shape:
        return x
    if x.ndim not in (3, 4) or len(shape) != x.ndim - 1 or shape[-1] != x.shape[-1]:
        raise UnsupportedModelError(
            f"cannot resize inputs of shape {x.shape[1:]} to {shape}: resolution applies to "
            "images (height, width, channels) and series (steps, channels) of the same channels")
    images = x[:, :, None, :] if x.ndim == 3 else x
    size = (shape[0], 1) if x.ndim == 3 else shape[:2]
    resized = np.concatenate([
        keras.ops.convert_to_numpy(keras.ops.image.resize(
            images[start:start + BATCH], size, interpolation="bilinear", antialias=True))
        for start in range(0, len(images), BATCH)])
    return (resized[:, :, 0, :] if x.ndim == 3 else resized).astype(x.dtype)
