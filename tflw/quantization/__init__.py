"""Int8 quantization-aware training for Keras 3 models (and tf_keras models via tfmot).

```python
qat = tflw.quantization.quantize_model(model)
tflw.quantization.calibrate(qat, x_train[:512])
tflw.quantization.layerwise_kmeans(qat, x_train[:512])   # after method="kmeans"
tflw.quantization.balance_activations(qat, x_train[:512])   # after activation_bits=2..7
```
"""

from tflw.quantization.activation_balance import balance_activations
from tflw.quantization.api import calibrate, quantize_model
from tflw.quantization.concatenate import QuantConcatenate
from tflw.quantization.fake_quant import FakeQuant
from tflw.quantization.folded import QuantConv2D, QuantDense, QuantDepthwiseConv2D
from tflw.quantization.hard_swish import QuantHardSwish
from tflw.quantization.layerwise import layerwise_kmeans
from tflw.quantization.multiply import QuantMultiply
from tflw.quantization.pooling import QuantAveragePooling2D, QuantGlobalAveragePooling2D
from tflw.quantization.layer_kinds import LAYER_KINDS
from tflw.quantization.quantize_model import LAYER_BUILDERS
from tflw.quantization.quantizers import fake_quant_range, fake_quant_weights

__all__ = [
    "LAYER_BUILDERS",
    "LAYER_KINDS",
    "FakeQuant",
    "QuantAveragePooling2D",
    "QuantConcatenate",
    "QuantConv2D",
    "QuantDense",
    "QuantDepthwiseConv2D",
    "QuantGlobalAveragePooling2D",
    "QuantHardSwish",
    "QuantMultiply",
    "balance_activations",
    "calibrate",
    "fake_quant_range",
    "fake_quant_weights",
    "layerwise_kmeans",
    "quantize_model",
]
