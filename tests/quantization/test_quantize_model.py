import keras
import numpy as np

import tflw
from tests.conftest import all_layers_model
from tflw.export.convert import to_tflite
from tflw.quantization import QuantConv2D, fake_quant_weights


def test_every_listed_layer_matches_tflite_micro_within_one_lsb(pixels):
    qat = tflw.quantize_model(all_layers_model(), calibration_data=pixels)
    result = tflw.verify(to_tflite(qat), pixels, reference=qat)
    assert result.max_lsb_difference <= 1.001
    assert result.parity


def test_trained_model_argmax_agrees_with_tflite_micro(trained_mnist_qat, mnist):
    _, qat = trained_mnist_qat
    _, (x_test, _) = mnist
    result = tflw.verify(to_tflite(qat), x_test[:500], reference=qat)
    assert result.argmax_agreement >= 0.99
    assert result.max_lsb_difference <= 1.001


def test_batch_norm_is_folded_and_output_is_close_to_float(pixels):
    model = all_layers_model()
    qat = tflw.quantize_model(model, calibration_data=pixels)
    kinds = {type(layer).__name__ for layer in qat.layers}
    assert "BatchNormalization" not in kinds
    assert np.abs(qat.predict(pixels[:32], verbose=0) - model.predict(pixels[:32], verbose=0)).max() < 0.02


def test_folded_kernel_is_what_gets_quantized():
    layer = QuantConv2D(4, 3, batch_norm={"epsilon": 1e-3})
    layer.build((None, 5, 5, 2))
    layer.gamma.assign([2.0, 1.0, 0.5, 1.0])
    layer.moving_variance.assign([1.0 - 1e-3] * 4)
    kernel, _ = layer.folded_kernel_and_bias()
    np.testing.assert_allclose(kernel, layer.kernel.numpy() * np.array([2.0, 1.0, 0.5, 1.0]), rtol=1e-5)


def test_weight_quantizer_is_symmetric_narrow_range_per_channel():
    weights = np.array([[1.0, -0.5], [-0.27, 0.2]], np.float32)
    quantized = np.asarray(fake_quant_weights(weights, axis=-1))
    scales = np.array([1.0, 0.5]) / 127
    np.testing.assert_allclose(quantized, np.round(weights / scales) * scales, rtol=1e-5)


def test_quantized_model_trains_and_round_trips_through_keras_file(tmp_path, pixels):
    qat = tflw.quantize_model(all_layers_model())
    qat.compile("adam", "sparse_categorical_crossentropy")
    labels = np.arange(len(pixels)) % 10
    before = qat.get_layer("classifier").kernel.numpy().copy()
    qat.fit(pixels, labels, epochs=1, batch_size=50, verbose=0)
    assert not np.allclose(before, qat.get_layer("classifier").kernel.numpy())
    qat.save(tmp_path / "qat.keras")
    loaded = keras.saving.load_model(tmp_path / "qat.keras")
    np.testing.assert_array_equal(qat.predict(pixels[:8], verbose=0), loaded.predict(pixels[:8], verbose=0))


def test_nested_model_is_flattened():
    inner = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu")], name="inner")
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(2)(inner(inputs))
    qat = tflw.quantize_model(keras.Model(inputs, outputs))
    assert not any(isinstance(layer, keras.Model) for layer in qat.layers)
    assert sum(type(layer).__name__ == "QuantDense" for layer in qat.layers) == 2


def test_an_identity_rescaling_keeps_its_input_scale_and_converts():
    # Rescaling(1.0) vanishes in TensorFlow; a quantizer of its own left a float tensor
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Rescaling(1.0, name="identity")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3)(x))
    data = np.random.default_rng(0).uniform(-1, 1, (32, 6, 6, 2)).astype("float32")
    qat = tflw.quantize_model(model, calibration_data=data)
    assert "identity" not in [layer.name for layer in qat.layers]
    assert tflw.verify(to_tflite(qat), data, reference=qat).max_lsb_difference < 0.01
