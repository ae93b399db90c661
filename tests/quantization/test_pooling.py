import keras
import numpy as np

import tflw
from tflw.export.convert import to_tflite
from tflw.export.flatbuffer import read_flatbuffer
from tflw.quantization.pooling import QuantGlobalAveragePooling2D


def _pooling_model() -> keras.Model:
    inputs = keras.Input((7, 7, 16))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))


def _features(count: int) -> np.ndarray:
    # Per-sample brightness spreads the means over the whole output range.
    rng = np.random.default_rng(0)
    return (rng.uniform(0, 6, (count, 7, 7, 16)) * rng.uniform(0, 1, (count, 1, 1, 1))).astype("float32")


def test_global_average_pooling_is_bit_exact_with_tflite_micro_mean():
    x = _features(300)
    qat = tflw.quantize_model(_pooling_model(), calibration_data=x)
    assert isinstance(qat.layers[-1], QuantGlobalAveragePooling2D)

    model_bytes = to_tflite(qat)
    result = tflw.verify(model_bytes, x, reference=qat)
    assert result.max_lsb_difference == 0.0

    # The same comparison against a mean rounded once shows what the emulation fixes.
    info = read_flatbuffer(model_bytes)
    q_in = info.inputs[0].quantize(x).astype(np.float64) - info.inputs[0].zero_point
    once = np.floor(q_in.mean(axis=(1, 2)) * info.inputs[0].scale / info.outputs[0].scale + 0.5)
    tflm = np.round(result.outputs[0] / info.outputs[0].scale)
    assert np.mean(once != tflm) > 0.02


def test_a_linear_activation_layer_does_not_hide_the_input_scale(pixels):
    # Found by the property test: with Activation("linear") between the conv and the
    # pooling, pooling and dense fell back to float rounding and missed by 2 LSB.
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(2, 1, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("linear")(x)
    x = keras.layers.AveragePooling2D(2, name="pool")(x)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x))
    qat = tflw.quantize_model(keras.Model(inputs, outputs), calibration_data=pixels)
    assert qat.get_layer("pool").linked_input_quantizer() is not None
    assert qat.get_layer("head").linked_input_quantizer() is not None


def test_a_mean_over_one_pixel_keeps_its_input_scale_as_the_device_does():
    # MobileNetV3's squeeze-excite at a 1x1 resolution: the converter drops that MEAN, or
    # keeps it (keepdims=False) on its input's scale; a range of its own missed by 4.9 LSB
    inputs = keras.Input((2, 2, 8))
    x = keras.layers.Conv2D(16, 2, name="to_1x1")(inputs)
    x = keras.layers.Activation("hard_swish")(x)  # a range of its own, as in MobileNetV3
    for keepdims in (True, False):
        pooled = keras.layers.GlobalAveragePooling2D(keepdims=keepdims, name="pool")(x)
        head = keras.layers.Dense(4, name="head")(keras.layers.Flatten()(pooled))
        x_data = np.random.default_rng(0).normal(size=(200, 2, 2, 8)).astype("float32")
        qat = tflw.quantize_model(keras.Model(inputs, head), calibration_data=x_data[:100])
        assert not isinstance(qat.get_layer("pool"), QuantGlobalAveragePooling2D)
        assert qat.get_layer("head").linked_input_quantizer() is not None
        model_bytes = to_tflite(qat)
        assert tflw.verify(model_bytes, x_data, reference=qat).max_lsb_difference < 0.01
