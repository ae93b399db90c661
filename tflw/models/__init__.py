"""A zoo of MCU-shaped models and the lightweight blocks they are built from.

```python
model = tflw.models.resnet8()
qat = tflw.quantize_model(model)
```
"""

from tflw.models.blocks import (
    bottleneck,
    channel_shuffle,
    conv_bn_relu,
    depthwise_separable,
    dilated_conv,
    fire,
    inverted_residual,
    residual_block,
    shuffle_unit,
    squeeze_excite,
)
from tflw.models.shift import Shift, SparseShift, shift_block, shift_residual_block
from tflw.models.zoo import (ds_cnn, gesture_cnn, mobilenet_v1, mobilenet_v3_small, resnet8,
                             resnet20, shift_resnet20)

__all__ = ["bottleneck", "channel_shuffle", "conv_bn_relu", "depthwise_separable", "dilated_conv",
           "ds_cnn", "fire", "gesture_cnn", "inverted_residual", "mobilenet_v1",
           "mobilenet_v3_small", "residual_block", "resnet8", "resnet20", "Shift", "shift_block",
           "shift_residual_block", "shift_resnet20", "shuffle_unit", "SparseShift", "squeeze_excite"]
