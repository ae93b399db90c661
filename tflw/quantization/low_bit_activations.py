"""Activations below 8 bits: post-ReLU tensors on 2^k levels, still int8 on the device.

TFLite-Micro's kernels are int8, and the only clamps they apply are those of a fused
activation: ReLU6 clamps a tensor of scale s and zero point z at z + round(6 / s). So a
tensor of scale 6 / (2^k - 1) whose producer fuses ReLU6 holds exactly 2^k values,
0, s, ..., 6, with no extra op and bit-exact with Keras. tflw therefore quantizes each
ReLU/ReLU6 that it fuses into a conv, dense or add to k bits by clipping at 6 (a ReLU
becomes a ReLU6) on an int8 range of that scale. The clipping level is fixed, not
learned as in PACT: the folded BatchNorm (gamma, beta) before it learns the same scale,
and the next layer's folded BatchNorm undoes it.

```python
qat = tflw.quantize_model(model, weight_bits=2, method="apot", activation_bits=2)   # W2/A2
low, high = relu6_levels_range(2)                    # (0.0, 510.0): scale 2, levels 0 2 4 6
```

References:
    Choi et al., "PACT: Parameterized Clipping Activation for Quantized Neural
    Networks", arXiv:1805.06085, 2018.
"""

import keras
import numpy as np

LOW_BIT_ACTIVATIONS = tuple(range(2, 8))
RELU6_LIMIT = 6.0


def relu6_levels_range(bits: int) -> tuple:
    """The int8 fake-quant range (min, max) that puts a ReLU6 output on 2^bits levels.

    With s = 6 / (2^k - 1) the range is [0, 255 s], so the int8 scale is s and the zero
    point -128; after ReLU6,

        q(x) = s * round(clip(x, 0, 6) / s),   k-bit codes -128 ... -128 + 2^k - 1

    Gradient: straight-through inside [0, 6], 0 outside (ReLU6's own).
    """
    if bits not in LOW_BIT_ACTIVATIONS:
        raise ValueError(f"low-bit activations take 2 to 7 bits, got {bits}")
    return 0.0, 255.0 * RELU6_LIMIT / (2 ** bits - 1)


def relu6_levels_bits(output_range) -> int:
    """The k of a `relu6_levels_range(k)`: its inverse, for a layer that holds only the range."""
    steps = round(255.0 * RELU6_LIMIT / output_range[1])
    return int(np.log2(steps + 1))


def silent_layers(model: keras.Model, data: np.ndarray, batch_size: int = 64) -> list:
    """Names of `model`'s layers whose low-bit output is 0 for every sample of `data`:
    all their ReLU outputs stay under half a level (1.0 at 2 bits), so the layers after
    them see no signal. Balancing moves a tensor that meets an Add only with the rest of
    its residual stream, so a quiet addend beside a loud one stays quiet."""
    layers = [layer for layer in model.layers if getattr(layer, "output_range", None)]
    if not layers:
        return []
    probe = keras.Model(model.input, [layer.output for layer in layers])
    alive = np.zeros(len(layers), bool)
    for start in range(0, len(data), batch_size):
        outputs = keras.tree.flatten(probe(data[start:start + batch_size], training=False))
        alive |= [bool(np.any(keras.ops.convert_to_numpy(o))) for o in outputs]
    return [layer.name for layer, lives in zip(layers, alive) if not lives]
