"""Bias correction: move each layer's bias so that quantizing its weights leaves the mean
of its output unchanged, per output channel, on the calibration data.

Rounding a kernel shifts the expected output: E[x (W_q - W)] is not 0 when the inputs'
mean is not (after a ReLU it never is), and a 4-bit kernel shifts it by much. The shift
is measured on the inputs the layer sees in the quantized model itself, layer after
layer, so each correction already sees the corrected layers before it (Nagel et al.,
"Data-Free Quantization Through Weight Equalization and Bias Correction", ICCV 2019,
section 4.2, in its empirical form).

```python
corrected, skipped = correct_biases(qat, x_calibration)
```
"""

from typing import Dict, List, Optional, Tuple

import keras
import numpy as np

from tflw.ptq.adaround import numpy_of
from tflw.ptq.layer_inputs import walk_layer_inputs

def output_shift(layer: keras.layers.Layer, inputs: np.ndarray,
                 float_kernel: Optional[np.ndarray] = None, batch_size: int = 256) -> np.ndarray:
    """Mean over `inputs` of the layer's output with its quantized kernel minus with its
    float kernel (the folded one, or `float_kernel` where rounding already moved it),
    per output channel, before the activation."""
    kernel = layer.folded_kernel_and_bias()[0]
    # in numpy: a PyTorch tensor that carries a gradient refuses numpy's subtraction
    error = numpy_of(layer.quantized_kernel(kernel)[0]) - (
        numpy_of(kernel) if float_kernel is None else float_kernel)
    total = 0.0
    for start in range(0, len(inputs), batch_size):
        outputs = keras.ops.convert_to_numpy(layer.linear(inputs[start:start + batch_size], error))
        total = total + outputs.reshape(-1, outputs.shape[-1]).sum(0, dtype=np.float64)
    positions = len(inputs) * int(np.prod(outputs.shape[1:-1]))
    return total / positions


def shift_bias(layer: keras.layers.Layer, shift: np.ndarray) -> bool:
    """Add `shift` to the layer's folded bias (BatchNorm's beta, or the bias divided by the
    BatchNorm scale); False where the layer has neither to move."""
    batch_norm = layer.batch_norm or {}
    if layer.batch_norm is not None and batch_norm.get("center", True):
        layer.beta.assign(layer.beta + shift)
        return True
    if not layer.use_bias:
        return False
    layer.bias.assign(layer.bias + shift / layer.batch_norm_scale())
    return True


def correct_biases(qat: keras.Model, data: np.ndarray,
                   float_kernels: Optional[Dict[str, np.ndarray]] = None
                   ) -> Tuple[List[str], List[str]]:
    """Correct every linear layer's bias in order; returns (corrected, skipped) layer
    names (skipped: no bias and no BatchNorm shift to move). `float_kernels`: each
    layer's folded float kernel by name, where adaptive rounding has replaced it."""
    corrected, skipped = [], []
    for layer, inputs in walk_layer_inputs(qat, data):
        shift = output_shift(layer, inputs, (float_kernels or {}).get(layer.name))
        (corrected if shift_bias(layer, -shift.astype(np.float32)) else skipped).append(layer.name)
    return corrected, skipped
