"""`WeightQuantizer`: what a below-8-bit weight scheme gives tflw's folded layers.

A scheme snaps each output channel of the folded kernel to at most 2^k values; the layer
then quantizes to int8 as usual, so the device holds int8 weights with at most 2^k
distinct values per channel, which `export` LUT-compresses to k-bit indices. A scheme
may learn a few parameters per channel (a step, a clipping level, centroids): the layer
holds them as one variable of shape (channels..., parameter_count).
"""

import numpy as np

from tflw.quantization.ewgs import check_delta


class WeightQuantizer:
    """Base of the low-bit weight schemes (LSQ, APoT, k-means, binary).

    Subclasses set `bits` and `parameter_count` and implement `__call__` (keras.ops,
    differentiable) and `initial_parameters` (numpy, from the float kernel).
    """

    bits: int
    parameter_count: int = 0

    def __call__(self, kernel, parameters, channel_axes: tuple):
        """The kernel on its levels. `parameters` has shape (channels..., parameter_count)
        (None when parameter_count is 0); `channel_axes` are the kernel's trailing axes
        that index one channel (() for one set over the tensor)."""
        raise NotImplementedError

    def initial_parameters(self, kernel: np.ndarray, channel_axes: tuple) -> np.ndarray:
        """The parameters to start QAT from, for a float kernel."""
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)



class KBitWeights(WeightQuantizer):
    """A 2- to 7-bit scheme with one learned parameter per channel and EWGS's gradient as an
    option (`ewgs_delta` > 0; 0 is the straight-through estimator)."""

    parameter_count = 1
    method = "k-bit"  # the name its errors give

    def __init__(self, bits: int, ewgs_delta: float = 0.0):
        if not 2 <= bits <= 7:
            raise ValueError(f"{self.method} weights take 2 to 7 bits, got {bits}: 8 bits is "
                             "plain int8, 1 bit binary")
        self.bits = bits
        self.ewgs_delta = check_delta(ewgs_delta)

    def get_config(self) -> dict:
        return {"bits": self.bits, "ewgs_delta": self.ewgs_delta}
