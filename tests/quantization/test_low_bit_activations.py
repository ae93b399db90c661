"""Activations below 8 bits: ReLUs on 2^k levels, exact to TFLite-Micro's int8 kernels."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tflw
from tflw.errors import SilentActivationWarning
from tflw.export.convert import to_tflite
from tflw.quantization import FakeQuant, balance_activations
from tflw.quantization.activation_balance import best_clip
from tflw.quantization.low_bit_activations import relu6_levels_range
from tflite_micro.tensorflow.lite.micro.compression import model_editor
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

RELU6 = schema.ActivationFunctionType.RELU6


@pytest.fixture(scope="module")
def w4a2(demo_cnn_w8, mnist):
    (x, _), _ = mnist
    return tflw.quantize_model(demo_cnn_w8, weight_bits=4, activation_bits=2,
                               calibration_data=x[:256])


def test_a2_range_has_scale_2_and_four_levels_after_relu6():
    assert relu6_levels_range(2) == (0.0, 510.0)
    quantizer = FakeQuant(fixed_range=relu6_levels_range(2))
    x = tf.constant([-1.0, 0.9, 1.1, 2.9, 3.1, 5.2, 7.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizer(keras.ops.relu6(x))
    np.testing.assert_array_equal(y.numpy(), [0, 0, 2, 2, 4, 6, 6])
    # straight through inside [0, 6], zero outside (ReLU6's own gradient)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0, 1, 1, 1, 1, 1, 0])


def test_best_clip_is_the_level_of_least_error():
    assert best_clip(np.tile([0.0, 1.0, 2.0, 3.0], 50), bits=2) == 3.0  # 4 values, no error
    assert best_clip(np.zeros(10), bits=2) == 0.0
    # one outlier in 10^5: clipping at 1 costs (99^2 + 1e5 (1/3)^2 / 12) / 1e5 = 0.107,
    # 4 levels over [0, 100] round all else to 0: E[x^2] = 1/3
    values = np.concatenate([np.linspace(0, 1, 99_999), [100.0]])
    assert best_clip(values, bits=2) < 10.0


def test_a2_model_runs_bit_exact_on_tflite_micro_with_four_levels(w4a2, mnist):
    _, (x_test, _) = mnist
    model_bytes = to_tflite(w4a2)
    relu_outputs = [op.outputs[0] for op in model_editor.read(model_bytes).subgraphs[0].operators
                    if getattr(op._fb.builtinOptions, "fusedActivationFunction", None) == RELU6]
    # the three ReLUs fused into conv and depthwise, and the residual ADD's
    assert len(relu_outputs) == 4
    for tensor in relu_outputs:
        assert list(tensor.quantization.scales) == [2.0]
        assert list(tensor.quantization.zero_points) == [-128]
    result = tflw.verify(model_bytes, x_test[:200], reference=w4a2)
    assert result.parity and result.argmax_agreement == 1.0
    assert np.mean(result.lsb_differences[0] > 0.5) < 1e-3
    # in Keras too, a post-ReLU tensor holds 4 values
    first_conv = next(layer for layer in w4a2.layers if type(layer).__name__ == "QuantConv2D")
    inner = keras.Model(w4a2.inputs, first_conv.output).predict(x_test[:50], verbose=0)
    assert set(np.unique(inner)) <= {0.0, 2.0, 4.0, 6.0}


def test_low_bit_outputs_train_on_the_devices_rounding(demo_cnn_w8, mnist):
    (x, _), _ = mnist
    qat = tflw.quantize_model(demo_cnn_w8, weight_bits=4, activation_bits=2,
                              calibration_data=x[:256])
    depthwise = next(layer for layer in qat.layers
                     if type(layer).__name__ == "QuantDepthwiseConv2D")
    first_conv = next(layer for layer in qat.layers if type(layer).__name__ == "QuantConv2D")
    # folded biases around the first rounding boundary (half a 2-bit level, 1.0): where
    # the input is 0 the output is the bias, which TFLite-Micro rounds to int32 and then
    # rescales with two roundings, so some channels land on the other level than float
    # fake quantization puts them
    folded_bias = keras.ops.convert_to_numpy(depthwise.folded_kernel_and_bias()[1])
    targets = np.linspace(0.97, 1.03, len(folded_bias)).astype("float32")
    depthwise.beta.assign(depthwise.beta.numpy() + targets - folded_bias)
    inputs = keras.Model(qat.input, first_conv.output)(x[:64], training=False)
    device = depthwise(inputs, training=False)
    np.testing.assert_array_equal(depthwise(inputs, training=True), device)
    assert set(np.unique(device)) <= {0.0, 2.0, 4.0, 6.0}


def test_best_clip_of_tensors_that_share_it_sums_their_errors():
    four = np.tile([0.0, 1.0, 2.0, 3.0], 50)
    half = np.tile([0.0, 0.5, 1.0, 1.5], 50)
    assert best_clip([four], bits=2) == best_clip(four, bits=2)
    assert (best_clip(four, bits=2), best_clip(half, bits=2)) == (3.0, 1.5)

    def summed_error(alpha):
        return sum(np.mean((t - np.round(np.clip(t, 0, alpha) * 3 / alpha) * alpha / 3) ** 2)
                   for t in (four, half))
    shared = best_clip([four, half], bits=2)
    assert 1.5 < shared < 3.0   # measured: 2.665
    assert summed_error(shared) < min(summed_error(1.5), summed_error(3.0))


def test_balancing_moves_a_residual_stream_by_one_factor(demo_cnn_w8, mnist):
    (x, _), _ = mnist
    plain = tflw.quantize_model(demo_cnn_w8, activation_bits=2)
    tflw.calibrate(plain, x[:256])
    balanced = tflw.quantize_model(demo_cnn_w8, activation_bits=2)
    tflw.calibrate(balanced, x[:256])
    factors = balance_activations(balanced, x[:256])
    first, branch, last_conv = [layer.name for layer in plain.layers
                                if type(layer).__name__ == "QuantConv2D"]
    depthwise_conv = next(layer.name for layer in plain.layers
                          if type(layer).__name__ == "QuantDepthwiseConv2D")
    # the first conv and the branch's 1x1 conv meet at the residual Add: one factor for
    # both (and the sum); the depthwise output and the last conv's (through the pooled
    # mean) move alone
    assert sorted(factors) == sorted([first, branch, last_conv, depthwise_conv])
    stream, depthwise, last = factors[first], factors[depthwise_conv], factors[last_conv]
    assert factors[branch] == stream and stream != 1.0 and depthwise != 1.0

    def moved(name, weight, factor):
        np.testing.assert_allclose(getattr(balanced.get_layer(name), weight).numpy(),
                                   getattr(plain.get_layer(name), weight).numpy() * factor,
                                   rtol=1e-5)
    moved(first, "gamma", stream)
    moved(branch, "gamma", stream)
    moved(branch, "kernel", 1.0 / depthwise)          # reads the depthwise output
    moved(depthwise_conv, "kernel", 1.0 / stream)     # reads the stream
    moved(depthwise_conv, "gamma", depthwise)
    moved(last_conv, "kernel", last / stream)         # reads the stream, no BatchNorm
    moved("logits", "kernel", 1.0 / last)
    # the branch's 8-bit output is in the stream: its learned range moves with it
    ranges = [model.get_layer(branch).output_quant.range_max.numpy() for model in (balanced, plain)]
    np.testing.assert_allclose(ranges[0], ranges[1] * stream, rtol=1e-6)


def residual_model() -> keras.Model:
    """conv-BN-ReLU, a conv-BN branch added to it, ReLU: a stream whose float outputs lie
    far below A2's first level."""
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(
        keras.layers.Conv2D(8, 3, use_bias=False)(inputs)))
    branch = keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 1, use_bias=False)(x))
    x = keras.layers.ReLU()(keras.layers.Add()([x, branch]))
    return keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)))


def plain_conv_model() -> keras.Model:
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)   # float outputs in [0, 1.4]: levels 0, 2, 4, 6 miss them
    x = keras.layers.Conv2D(4, 1)(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


# measured: A4 3.3e-3 -> 9.8e-5, A2 0.93 -> 0.70; residual A2 0.78 -> 0.46
@pytest.mark.parametrize("build, bits, plain_error, balanced_error", [
    (plain_conv_model, 4, 2e-3, 3e-4), (plain_conv_model, 2, 0.9, 0.75),
    (residual_model, 2, 0.7, 0.55)])
def test_balancing_cuts_the_quantization_error(pixels, build, bits, plain_error, balanced_error):
    keras.utils.set_random_seed(0)
    model = build()
    x_cal = pixels[:200] / 255.0
    reference = model.predict(x_cal, verbose=0)

    def error(qat):
        return np.mean((qat.predict(x_cal, verbose=0) - reference) ** 2) / np.mean(reference ** 2)
    plain = tflw.quantize_model(model, activation_bits=bits)
    tflw.calibrate(plain, x_cal)
    balanced = tflw.quantize_model(model, activation_bits=bits, calibration_data=x_cal)
    assert error(plain) > plain_error
    assert error(balanced) < balanced_error


def test_a2_model_round_trips_through_a_keras_file(w4a2, mnist, tmp_path):
    _, (x_test, _) = mnist
    w4a2.save(tmp_path / "a2.keras")
    loaded = keras.saving.load_model(tmp_path / "a2.keras")
    add = next(layer for layer in loaded.layers if type(layer).__name__ == "QuantAdd")
    assert add.output_range == relu6_levels_range(2)
    np.testing.assert_array_equal(loaded.predict(x_test[:32], verbose=0),
                                  w4a2.predict(x_test[:32], verbose=0))


def test_one_bit_activations_are_a_clear_error(demo_cnn_w8):
    with pytest.raises(ValueError, match="activation_bits must be 2 to 8, or 16"):
        tflw.quantize_model(demo_cnn_w8, activation_bits=1)


def test_a_low_bit_tensor_that_is_always_zero_is_named_in_a_warning():
    inputs = keras.Input((8, 8, 1))
    quiet = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="quiet")
    loud = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="loud")
    a = quiet(inputs)
    total = keras.layers.Add()([a, loud(a)])  # "quiet" moves only with "loud" and the sum
    model = keras.Model(inputs, keras.layers.Dense(2)(
        keras.layers.GlobalAveragePooling2D()(total)))
    quiet.set_weights([w * 1e-3 for w in quiet.get_weights()])  # ReLU outputs far below 1
    loud.set_weights([loud.get_weights()[0], np.full(4, 1.5, np.float32)])  # 2 from its bias
    x = np.random.default_rng(0).uniform(0, 1, (32, 8, 8, 1)).astype("float32")
    with pytest.warns(SilentActivationWarning) as record:
        tflw.quantize_model(model, activation_bits=2, calibration_data=x)
    messages = [str(w.message) for w in record if w.category is SilentActivationWarning]
    assert len(messages) == 1 and messages[0].startswith("'quiet': every 2-bit output is 0")


def test_a_trained_model_quantizes_to_a2_without_a_silent_tensor(demo_cnn_w8, mnist):
    (x, _), _ = mnist
    with warnings.catch_warnings():
        warnings.simplefilter("error", SilentActivationWarning)
        tflw.quantize_model(demo_cnn_w8, activation_bits=2, calibration_data=x[:256])
