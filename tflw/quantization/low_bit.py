"""Which weight scheme a layer gets for (method, bits): `quantize_model(method=...)`.

```python
weight_quantizer("apot+ewgs", 2)   # ApotWeights(bits=2, ewgs_delta=EWGS_DELTA)
weight_quantizer("lsq", 8)         # None: plain int8
```
"""

from typing import Optional

from tflw.quantization.apot import ApotWeights
from tflw.quantization.binary import BinaryWeights
from tflw.quantization.kmeans import KmeansWeights
from tflw.quantization.lsq import LsqWeights
from tflw.quantization.weight_quantizer import WeightQuantizer

METHODS = ("lsq", "ewgs", "apot", "apot+ewgs", "kmeans", "binary")
# tflw's fixed EWGS factor (Lee et al. estimate it from the Hessian; see tflw.quantization.ewgs).
EWGS_DELTA = 0.2


def weight_quantizer(method: str, bits: int) -> Optional[WeightQuantizer]:
    """The scheme for `bits`-bit weights by `method` (one of METHODS); None at 8 bits.

    "ewgs" is LSQ with EWGS's gradient; "apot+ewgs" is APoT with it. One bit is binary
    for every method but "kmeans" (two centroids per channel).
    """
    if method not in METHODS:
        raise ValueError(f"unknown weight method '{method}'; choose one of {', '.join(METHODS)}")
    if not 1 <= bits <= 8:
        raise ValueError(f"weight bits must be 1 (binary) to 8, got {bits}")
    if method == "binary" and bits != 1:
        raise ValueError(f"binary weights are 1 bit, got {bits}: use weight_bits=1")
    if bits == 8:
        return None
    if method == "kmeans":
        return KmeansWeights(bits)
    if bits == 1:
        return BinaryWeights()
    delta = EWGS_DELTA if method.endswith("ewgs") else 0.0
    return (ApotWeights if method.startswith("apot") else LsqWeights)(bits, ewgs_delta=delta)
