"""Kill-the-bits' layer-wise objective for k-means weights, in its diagonal form.

Stock et al. (2020) fit each layer's codebook to reproduce the layer's outputs on data,
||x W - x Q(W)||^2, rather than its weights, ||W - Q(W)||^2, one layer after another, each
seeing the inputs that the already-compressed layers before it produce. For tflw's
scalar per-channel codebooks, output channel o's objective is (w - q)^T E[x x^T] (w - q)
over its input patches x; keeping the diagonal of E[x x^T], it is k-means in which each
weight counts by the mean square of the input it multiplies, so weights that meet large
activations get the finer centroids. A depthwise channel sees a single input channel, so
its centroids do not change.

```python
qat = tflw.quantize_model(model, weight_bits=2, method="kmeans", calibration_data=x[:512])
layerwise_kmeans(qat, x[:512])   # centroids refit to each layer's outputs, in order
```
"""

from typing import Optional

import keras
import numpy as np

from tflw.quantization.folded import QuantConv2D, QuantDense
from tflw.quantization.kmeans import KmeansWeights, kmeans_centroids


def layerwise_kmeans(model: keras.Model, data: np.ndarray, batch_size: int = 64) -> list:
    """Refit the centroids of every k-means layer of a `quantize_model(method="kmeans")`
    model to its outputs on `data`, first layer first. Returns the refitted layers' names.

    Args:
        model: the quantization-aware model (calibrated: each layer's inputs are computed
            as the device would, through the layers before it).
        data: a few hundred typical inputs.
        batch_size: for running the model up to each layer.

    References:
        P. Stock, A. Joulin, R. Gribonval, B. Graham, H. Jégou, "And the Bit Goes Down:
        Revisiting the Quantization of Neural Networks", ICLR 2020.
    """
    refitted = []
    for layer in model.layers:
        if not isinstance(getattr(layer, "low_bit_weights", None), KmeansWeights):
            continue
        upstream = keras.Model(model.inputs, layer.input)
        inputs = upstream.predict(data, batch_size=batch_size, verbose=0)
        kernel = keras.ops.convert_to_numpy(layer.folded_kernel_and_bias()[0])
        layer.weight_parameters.assign(kmeans_centroids(
            kernel, layer.low_bit_weights.parameter_count,
            layer.channel_axes(kernel.ndim), _input_energy(layer, inputs, kernel.shape)))
        refitted.append(layer.name)
    return refitted


def _input_energy(layer, inputs: np.ndarray, kernel_shape: tuple) -> Optional[np.ndarray]:
    """E[x^2] of the input each kernel weight multiplies, broadcastable to the kernel;
    None where every weight of a channel meets the same input (depthwise, grouped)."""
    energy = np.mean(np.square(inputs, dtype=np.float64), axis=tuple(range(inputs.ndim - 1)))
    if isinstance(layer, QuantDense):
        return energy[:, None]                        # kernel (inputs, units)
    if isinstance(layer, QuantConv2D) and kernel_shape[2] == energy.size:
        return energy[None, None, :, None]            # kernel (h, w, inputs, filters)
    return None
