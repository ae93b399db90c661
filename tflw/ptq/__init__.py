"""Quantization without training: cross-layer equalization, activation ranges from
unlabeled calibration data, bias correction, and rounding learned per layer (AdaRound) or
per block (BRECQ), on tflw's quantized layers (so export stays bit-exact).

```python
q = tflw.ptq(model, x_train[:1024], ranges="mse", bias_correction=True)
q4 = tflw.ptq(model, x_train[:1024], weight_bits=4, rounding="brecq")
tflw.export(q, "out", sample_inputs=x_test[:200])
```
"""

from tflw.ptq.api import ptq
from tflw.ptq.bias_correction import correct_biases
from tflw.ptq.equalization import equalize
from tflw.ptq.ranges import RANGE_METHODS, record_activations

__all__ = ["RANGE_METHODS", "correct_biases", "equalize", "ptq", "record_activations"]
