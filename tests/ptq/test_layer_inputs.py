"""One walk over the graph gives each layer its inputs, the changes before it seen."""

import keras
import numpy as np

import tflw
from tflw.conversion_trace import float_rounding
from tflw.ptq.layer_inputs import linear_layers, walk_layer_inputs
from tflw.ptq.ranges import unquantized_activations


def _residual_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = tflw.models.conv_bn_relu(inputs, 8, 3, name="stem")
    x = tflw.models.residual_block(x, 12, strides=2, name="block")  # a 1x1 shortcut beside
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x))


def _probe(qat, layer, data, quantized=True) -> np.ndarray:
    probe = keras.Model(qat.inputs[0], layer.input)
    with float_rounding() if quantized else unquantized_activations(qat):
        return keras.ops.convert_to_numpy(probe(data, training=not quantized))


def test_each_layer_receives_what_the_whole_model_gives_it_with_the_changes_before_it():
    data = np.random.default_rng(0).uniform(0, 1, (40, 8, 8, 3)).astype("float32")
    qat = tflw.quantize_model(_residual_model(), weight_bits=4, calibration_data=data)
    walked = []
    for layer, inputs in walk_layer_inputs(qat, data, batch_size=16):
        np.testing.assert_allclose(inputs, _probe(qat, layer, data), atol=1e-5)
        walked.append(layer)
        kernel = layer.kernel.numpy()  # a change the later layers must see
        layer.kernel.assign(kernel + np.random.default_rng(1).normal(0, 0.1, kernel.shape))
    assert sorted(layer.name for layer in walked) == sorted(l.name for l in linear_layers(qat))


def test_the_walk_before_activation_quantization_matches_the_unquantized_model():
    data = np.random.default_rng(0).uniform(0, 1, (24, 8, 8, 3)).astype("float32")
    qat = tflw.quantize_model(_residual_model(), calibration_data=data)
    differences = []
    for layer, inputs in walk_layer_inputs(qat, data, quantized=False):
        np.testing.assert_allclose(inputs, _probe(qat, layer, data, quantized=False), atol=1e-5)
        differences.append(np.abs(inputs - _probe(qat, layer, data)).max())
    assert max(differences) > 1e-3  # not what the quantized walk gives
