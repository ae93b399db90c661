import numpy as np
import pytest

import tflw
from tflw.export.dense_granularity import output_error


@pytest.fixture(scope="module")
def task(trained_demo_w8, mnist):
    (x, _), (x_test, _) = mnist
    return trained_demo_w8, x[:1024], x_test[:200]


def test_int8_ptq_is_bit_exact_in_tflite_micro_and_no_worse_than_the_converter(task, tmp_path):
    model, calibration, x_test = task
    reference = model.predict(x_test, verbose=0)
    converter = tflw.export(model, tmp_path / "converter", representative_data=calibration[:300],
                            sample_inputs=x_test)
    quantized = tflw.ptq(model, calibration)
    result = tflw.export(quantized, tmp_path / "ptq", sample_inputs=x_test)
    assert result.verification.max_lsb_difference <= 1.001
    ptq_error = output_error(tflw.verify(result.tflite_path, x_test).outputs[0], reference)
    converter_error = output_error(tflw.verify(converter.tflite_path, x_test).outputs[0], reference)
    assert ptq_error <= converter_error
    assert result.arena_bytes <= converter.arena_bytes
    assert result.flatbuffer_bytes <= converter.flatbuffer_bytes


def test_4_bit_ptq_rounds_adaptively_and_exports_lut_compressed_and_bit_exact(task, tmp_path):
    model, calibration, x_test = task
    quantized = tflw.ptq(model, calibration, weight_bits=4, iterations=50)  # AdaRound
    result = tflw.export(quantized, tmp_path / "w4", sample_inputs=x_test, compress="always")
    assert result.verification.max_lsb_difference <= 1.001
    assert result.compressed_path is not None and result.report["lut"]["written"]
    nearest = tflw.ptq(model, calibration, weight_bits=4, rounding="nearest")
    moved = {layer.weight_bits: False for layer in nearest.layers if hasattr(layer, "kernel")}
    for layer in nearest.layers:
        if hasattr(layer, "kernel"):
            learned = quantized.get_layer(layer.name).kernel.numpy()
            moved[layer.weight_bits] |= not np.array_equal(learned, layer.kernel.numpy())
    assert moved == {8: False, 4: True}  # the 8-bit layers keep nearest rounding
    reference = model.predict(x_test, verbose=0)
    assert (output_error(quantized.predict(x_test, verbose=0), reference)
            < output_error(nearest.predict(x_test, verbose=0), reference))


def test_below_8_bits_depthwise_layers_stay_8_bit_unless_told(task):
    model, calibration, _ = task
    depthwise = [l.name for l in model.layers if type(l).__name__ == "DepthwiseConv2D"]
    assert depthwise

    def bits(quantized):
        return {l.name: l.weight_bits for l in quantized.layers if hasattr(l, "weight_bits")}

    default = bits(tflw.ptq(model, calibration[:64], weight_bits=4, bias_correction=False,
                            rounding="nearest"))
    assert {default[name] for name in depthwise} == {8} and 4 in default.values()
    told = bits(tflw.ptq(model, calibration[:64], weight_bits=4, bias_correction=False,
                         rounding="nearest", layer_bits={depthwise[0]: 4}))
    assert told[depthwise[0]] == 4


def test_an_unknown_range_method_is_refused_before_any_work(task):
    model, calibration, _ = task
    with pytest.raises(ValueError, match="minmax, percentile, mse"):
        tflw.ptq(model, calibration, ranges="entropy")


def test_a_tf_keras_model_is_refused_with_the_way_in():
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
    with pytest.raises(tflw.errors.UnsupportedModelError, match="representative_data"):
        tflw.ptq(model, np.zeros((8, 4), np.float32))
