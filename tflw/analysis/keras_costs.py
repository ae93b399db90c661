"""Parameters and MACs counted on the Keras model, as the int8 flatbuffer will hold them.

A cross-check for the flatbuffer's own counts (`tflw.analyze`): the two must agree.

```python
parameters, macs = keras_costs(model)
```
"""

import numpy as np

from tflw.model_graph import read_graph


def _shape(variable) -> tuple:
    return tuple(int(d) for d in variable.shape)


def _layer_costs(layer, output_shape: tuple) -> tuple:
    """(parameters, MACs) of one layer call with `output_shape` (batch axis dropped)."""
    outputs, channels = int(np.prod(output_shape)), int(output_shape[-1])
    pointwise = getattr(layer, "pointwise_kernel", None)
    if pointwise is not None:  # SeparableConv: a depthwise op, then a 1x1 conv
        depthwise = _shape(layer.depthwise_kernel)  # (kh, kw, in, multiplier)
        spatial, middle = outputs // channels, depthwise[2] * depthwise[3]
        parameters = int(np.prod(depthwise)) + middle + middle * channels + channels
        return parameters, spatial * middle * (depthwise[0] * depthwise[1] + channels)
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        return 0, 0
    shape = _shape(kernel)
    fan_in = int(np.prod(shape[:-2])) if "Depthwise" in type(layer).__name__ else int(np.prod(shape[:-1]))
    return int(np.prod(shape)) + channels, outputs * fan_in


def keras_costs(model) -> tuple:
    """(parameters, MACs) of the layers with a kernel, BatchNorm folded away.

    Each conv/depthwise/dense layer counts its kernel plus one bias per output channel
    (the converter gives int8 convolutions an int32 bias, folded or zero; it drops an
    all-zero FULLY_CONNECTED bias, so count trained models), and its MACs as output
    elements times the kernel's fan-in for one output value. A SeparableConv2D counts as
    its depthwise and 1x1 halves. Float models and `tflw.quantize_model` outputs count
    the same.
    """
    parameters = macs = 0
    for step in read_graph(model).steps:
        layer_parameters, layer_macs = _layer_costs(
            step.layer, tuple(step.node.outputs[0].shape)[1:])
        parameters += layer_parameters
        macs += layer_macs
    return parameters, macs
