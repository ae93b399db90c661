"""The 16x8 scheme: int16 activations, int8 weights, exact to TFLite-Micro."""

import keras
import numpy as np
import pytest

import tflw
from tests.export.sketch_compiler import assert_compiles
from tflw.demo import build_demo_model
from tflw.errors import UnsupportedLayerError
from tflw.export.convert import to_tflite
from tflw.export.flatbuffer import read_flatbuffer
from tflite_micro.tensorflow.lite.micro.compression import model_editor
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema


@pytest.fixture(scope="module")
def model_16x8(demo_cnn_w8, mnist):
    (x, _), _ = mnist
    return tflw.quantize_model(demo_cnn_w8, activation_bits=16, calibration_data=x[:256])


def test_16x8_model_has_int16_io_and_matches_tflite_micro(model_16x8, mnist):
    _, (x_test, _) = mnist
    model_bytes = to_tflite(model_16x8)
    info = read_flatbuffer(model_bytes)
    assert [t.dtype for t in info.inputs + info.outputs] == ["INT16", "INT16"]
    assert info.inputs[0].zero_point == info.outputs[0].zero_point == 0
    result = tflw.verify(model_bytes, x_test[:200], reference=model_16x8)
    assert result.parity and result.argmax_agreement == 1.0
    # every output exact: with the accumulator summed from float32 inputs instead of
    # integer codes, 3 to 5 of these 2,000 were one LSB off (by what ran before)
    assert np.max(result.lsb_differences[0]) < 0.5


def test_16x8_biases_are_stored_as_aligned_int64(model_16x8):
    # TFLite-Micro's int16 depthwise kernel, and CMSIS-NN's int16 dense, read their bias as
    # int64; the converter wrote int32, and the outputs were up to 65,535 LSB off.
    model_bytes = to_tflite(model_16x8)
    model = model_editor.read(model_bytes)
    biases = [op.inputs[2] for op in model.subgraphs[0].operators
              if len(op.inputs) > 2 and op.inputs[2] is not None]
    assert len(biases) == 5 and {b.dtype for b in biases} == {schema.TensorType.INT64}
    depthwise = [op for op in model.subgraphs[0].operators
                 if op.opcode == schema.BuiltinOperator.DEPTHWISE_CONV_2D]
    assert len(depthwise) == 1
    bias = depthwise[0].inputs[2]
    assert bias.dtype == schema.TensorType.INT64
    assert model_bytes.find(bias.array.tobytes()) % 16 == 0
    layer = next(layer for layer in model_16x8.layers
                 if type(layer).__name__ == "QuantDepthwiseConv2D")
    _, folded_bias = layer.folded_kernel_and_bias()
    # the bias scale: the product of the unrounded scales, stored as float32
    weight_scales = np.asarray(layer.quantized_kernel(layer.folded_kernel_and_bias()[0])[1])
    unit = np.float32(float(layer.linked_input_quantizer().scale(exact=True)) * weight_scales)
    np.testing.assert_array_equal(bias.quantization.scales, unit)
    np.testing.assert_array_equal(
        bias.array, np.round(np.asarray(folded_bias, np.float64) / unit.astype(np.float64)))


def test_16x8_round_trips_through_a_keras_file(model_16x8, mnist, tmp_path):
    _, (x_test, _) = mnist
    model_16x8.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert {layer.bits for layer in loaded._flatten_layers() if hasattr(layer, "range_min")} == {16}
    np.testing.assert_array_equal(loaded.predict(x_test[:32], verbose=0),
                                  model_16x8.predict(x_test[:32], verbose=0))


def test_16x8_sketch_uses_int16_io(model_16x8, mnist, tmp_path):
    _, (x_test, _) = mnist
    with pytest.warns(tflw.errors.ArduinoLibraryWarning, match="int16 MAX_POOL_2D"):
        result = tflw.export(model_16x8, tmp_path / "out", sample_inputs=x_test[:20])
    sketch = result.sketch_path.read_text()
    assert "input->data.i16[i] = kSampleInputs[k][i]" in sketch
    assert "const int16_t kExpectedOutput0" in sketch
    assert "data.int8" not in sketch
    # Chirale's CMSIS-NN pooling refuses int16 (its conv and dense read the int64 biases)
    assert "int16 MAX_POOL_2D" in sketch and "int16 CONV_2D" not in sketch
    assert_compiles(result.out_dir, tmp_path)


def concatenated(x):
    return keras.layers.Concatenate()([x, keras.layers.Conv2D(2, 1)(x)])


def gated(x):
    return keras.layers.Multiply()([x, keras.layers.Conv2D(4, 1, activation="relu")(x)])


@pytest.mark.parametrize("block, layer_type", [
    (concatenated, "Concatenate"),
    (gated, "Multiply"),
    (lambda x: keras.layers.Activation("tanh")(x), "Activation"),
    (lambda x: keras.layers.Activation("hard_swish")(x), "Activation"),
], ids=["concat", "multiply", "tanh", "hard_swish"])
def test_16x8_refuses_what_it_cannot_match_naming_the_layer(block, layer_type):
    inputs = keras.Input((6, 6, 4))
    model = keras.Model(inputs, block(keras.layers.Conv2D(4, 1)(inputs)))
    with pytest.raises(UnsupportedLayerError, match=f"{layer_type}.*activation_bits=8"):
        tflw.quantize_model(model, activation_bits=16)


def test_activation_bits_other_than_8_or_16_is_a_clear_error():
    with pytest.raises(ValueError, match="activation_bits must be 2 to 8, or 16"):
        tflw.quantize_model(build_demo_model(width=4), activation_bits=12)
