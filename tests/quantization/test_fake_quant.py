"""`FakeQuant`: learned activation ranges, including the degenerate all-zero tensor."""

import keras
import numpy as np

import tflw
from tflw.quantization import FakeQuant
from tflw.quantization.fake_quant import MIN_RANGE


def test_an_all_zero_tensor_gets_the_narrowest_range_and_stays_zero():
    quantizer = FakeQuant()
    outputs = quantizer(np.zeros((4, 3), np.float32), training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs), np.zeros((4, 3)))
    assert float(quantizer.range_min.numpy()) == 0.0
    assert float(quantizer.range_max.numpy()) == np.float32(MIN_RANGE)


def test_a_model_with_a_dead_relu_exports_and_matches_tflite_micro(tmp_path):
    # with the range [0, 0], export took it for an uncalibrated model and refused it
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    dead = keras.layers.Conv2D(4, 3, activation="relu", name="dead",
                               bias_initializer=keras.initializers.Constant(-10.0))
    hidden = keras.layers.Conv2D(4, 3, activation="relu", bias_initializer="ones")(dead(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(hidden)))
    x = np.random.default_rng(0).uniform(0, 1, (32, 8, 8, 1)).astype("float32")
    qat = tflw.quantize_model(model, calibration_data=x)
    quantizer = qat.get_layer("dead").output_quant
    assert (float(quantizer.range_min.numpy()), float(quantizer.range_max.numpy())) == (
        0.0, np.float32(MIN_RANGE))
    result = tflw.export(qat, tmp_path / "dead", sample_inputs=x)
    # float noise, not a level: unseeded, 2 of 5 runs were 3e-5 LSB off (seed 0: 1.6e-5)
    assert result.verification.max_lsb_difference < 1e-3
