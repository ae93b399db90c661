import keras
import numpy as np
import pytest

import tflw
from tflw.ptq.bias_correction import correct_biases
from tflw.ptq.layer_inputs import layer_inputs, linear_layers


def _conv_bn(x):
    x = keras.layers.Conv2D(8, 3, use_bias=False, name="target")(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.ReLU()(x)


def _conv_bias(x):
    return keras.layers.Conv2D(8, 3, activation="relu", name="target")(x)


def _conv_bn_no_center(x):
    x = keras.layers.Conv2D(8, 3, name="target")(x)
    x = keras.layers.BatchNormalization(center=False)(x)
    return keras.layers.ReLU()(x)


@pytest.mark.parametrize("block", [_conv_bn, _conv_bias, _conv_bn_no_center])
def test_the_mean_output_of_a_4_bit_layer_equals_the_float_kernels_after_correction(block):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.GlobalAveragePooling2D()(block(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4)(x))
    for layer in model.layers:  # BatchNorm with statistics of its own
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([w + np.random.default_rng(1).uniform(0.5, 1.5, w.shape)
                               for w in layer.get_weights()])
    data = np.random.default_rng(0).uniform(0, 1, (256, 12, 12, 3)).astype(np.float32)
    qat = tflw.quantize_model(model, layer_bits={"target": 2}, calibration_data=data)
    layer = next(l for l in linear_layers(qat) if l.name == "target")

    def mean_error(bias):
        kernel, _ = layer.folded_kernel_and_bias()
        x = layer_inputs(qat, layer, data)
        quantized = keras.ops.convert_to_numpy(layer.linear(x, layer.quantized_kernel(kernel)[0]))
        exact = keras.ops.convert_to_numpy(layer.linear(x, kernel))
        now = keras.ops.convert_to_numpy(layer.folded_kernel_and_bias()[1])
        return (quantized + now - exact - bias).reshape(-1, 8).mean(0)

    float_bias = keras.ops.convert_to_numpy(layer.folded_kernel_and_bias()[1])
    before = mean_error(float_bias)
    corrected, skipped = correct_biases(qat, data)
    after = mean_error(float_bias)
    assert "target" in corrected and not skipped
    assert np.abs(before).max() > 1e-3  # 2-bit rounding moves the mean
    assert np.abs(after).max() < 1e-5 * max(1.0, np.abs(float_bias).max())
