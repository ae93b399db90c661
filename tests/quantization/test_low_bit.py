"""Low-bit weights in a model, for every method: the int8 levels in the flatbuffer, the
LUT-compressed model in TFLite-Micro, saving, analysis."""

import keras
import numpy as np
import pytest

import tflw
from tests.conftest import randomize_batch_norms
from tests.export.sketch_compiler import assert_compiles
from tflw.export.convert import to_tflite
from tflw.export.lut import _plan, lut_compress
from tflw.models import depthwise_separable
from tflite_micro.python.tflite_micro.runtime import convert_bytearray_to_object
from tflite_micro.tensorflow.lite.micro.compression import compress, spec


def small_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="first")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = depthwise_separable(x, 32, name="middle")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="wide")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return randomize_batch_norms(keras.Model(inputs, keras.layers.Dense(5, name="last")(x)))


def int8_levels(model_bytes: bytes) -> dict:
    """{tensor name: most distinct int8 values in one quantization channel}."""
    model = convert_bytearray_to_object(bytearray(model_bytes))
    graph, levels = model.subgraphs[0], {}
    for op in graph.operators:
        tensor = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
        data = None if tensor is None else model.buffers[tensor.buffer].data
        if data is None or not len(data) or tensor.type != 9:
            continue
        values = np.frombuffer(bytes(np.asarray(data, np.uint8)), np.int8).reshape(tensor.shape)
        axis = tensor.quantization.quantizedDimension if len(tensor.quantization.scale) > 1 else None
        slices = [values] if axis is None else [np.take(values, i, axis) for i in range(values.shape[axis])]
        levels[tensor.name.decode().split("/")[1]] = max(len(np.unique(s)) for s in slices)
    return levels


@pytest.mark.parametrize("bits, method", [
    (4, "lsq"), (2, "lsq"), (3, "ewgs"), (4, "apot"), (2, "apot+ewgs"), (3, "kmeans"),
])
def test_k_bit_layers_hold_at_most_2_to_the_k_int8_values_per_channel(bits, method, pixels):
    qat = tflw.quantize_model(small_cnn(), calibration_data=pixels, weight_bits=bits,
                              method=method)
    qat.compile("adam", keras.losses.MeanSquaredError())
    qat.fit(pixels, np.random.default_rng(0).normal(size=(len(pixels), 5)), epochs=1, verbose=0)
    levels = int8_levels(to_tflite(qat))
    low_bit = {name: count for name, count in levels.items() if not name.startswith(("first", "last"))}
    # symmetric schemes have 2^k - 1 levels (zero once); k-means has 2^k centroids
    assert len(low_bit) == 3 and max(low_bit.values()) <= 2**bits - (method != "kmeans")
    assert max(levels[name] for name in levels if name.startswith("last")) > 2**bits


@pytest.mark.parametrize("method", ["lsq", "apot", "kmeans"])
def test_export_writes_a_lut_model_identical_on_tflite_micro_and_smaller(method, pixels, tmp_path):
    qat = tflw.quantize_model(small_cnn(), calibration_data=pixels, weight_bits=3, method=method)
    result = tflw.export(qat, tmp_path / "out", sample_inputs=pixels, compress="always")
    lut = result.report["lut"]
    assert result.compressed_path.is_file() and lut["identical_outputs"] and lut["written"]
    # a few hundred bytes saved do not pay for DECODE's code: "auto" would not write it
    assert not lut["pays"] and lut["flash_saved_bytes"] < lut["decode_code_bytes"]
    assert lut["flatbuffer_bytes"] == result.compressed_path.stat().st_size < result.flatbuffer_bytes
    sketch = result.sketch_path.read_text()  # describes the compressed twin, embeds the int8 one
    assert f"model_compressed.tflite, {lut['flatbuffer_bytes']:,} bytes" in sketch
    assert "resolver.AddDecode()" in sketch and f"kTensorArenaSize = {lut['arena_size']}" in sketch
    assert (result.out_dir / "model_compressed_data.cc").is_file()
    assert_compiles(result.out_dir, tmp_path)
    assert {t["axis"] for t in lut["tensors"]} == {0} and all(t["bits"] <= 3 for t in lut["tensors"])
    assert result.verification.max_lsb_difference <= 1.001  # the int8 model vs Keras
    assert "TFLM_DECODE" in {op.name for op in tflw.read_flatbuffer(
        result.compressed_path.read_bytes()).ops}


def test_shared_levels_give_one_lut_per_layer_and_a_smaller_model(pixels, tmp_path):
    models = {shared: tflw.quantize_model(small_cnn(), calibration_data=pixels, weight_bits=4,
                                          method="kmeans", shared_levels=shared)
              for shared in (False, True)}
    # the low-bit kernels: one int8 scale and at most 2^k values over the whole tensor
    levels = int8_levels(to_tflite(models[True]))
    low_bit = [count for name, count in levels.items() if not name.startswith(("first", "last"))]
    assert len(low_bit) == 3 and max(low_bit) <= 16
    per_channel, shared = (tflw.export(models[shared], tmp_path / str(shared),
                                       sample_inputs=pixels, compress="always")
                           for shared in (False, True))
    assert {t["axis"] for t in shared.report["lut"]["tensors"]} == {None}
    assert shared.report["lut"]["identical_outputs"] and shared.verification.parity
    assert shared.report["lut"]["flatbuffer_bytes"] < per_channel.report["lut"]["flatbuffer_bytes"]


def test_an_int8_model_gets_no_lut_model(pixels, tmp_path):
    plain = tflw.export(tflw.quantize_model(small_cnn(), calibration_data=pixels),
                        tmp_path / "int8", sample_inputs=pixels)
    assert plain.compressed_path is None and plain.report["lut"] is None
    assert "model_compressed" not in plain.sketch_path.read_text()


def test_methods_and_bits_are_chosen_per_layer_and_checked():
    qat = tflw.quantize_model(small_cnn(), weight_bits=4, method="apot",
                              layer_bits={"wide": (2, "kmeans"), "middle_pw_conv": 3})
    schemes = {layer.name: (layer.weight_bits, layer.weight_method) for layer in qat.layers
               if hasattr(layer, "weight_method")}
    assert schemes == {"first": (8, "lsq"), "middle_dw": (4, "apot"),
                       "middle_pw_conv": (3, "apot"), "wide": (2, "kmeans"), "last": (8, "lsq")}
    with pytest.raises(ValueError, match="unknown weight method 'apt'"):
        tflw.quantize_model(small_cnn(), weight_bits=4, method="apt")
    with pytest.raises(ValueError, match="'wide'.*binary weights are 1 bit"):
        tflw.quantize_model(small_cnn(), layer_bits={"wide": (4, "binary")})
    with pytest.raises(ValueError, match="'nope', which is not a weighted layer"):
        tflw.quantize_model(small_cnn(), layer_bits={"nope": 4})


def test_lut_tables_follow_the_quantization_axis_and_per_tensor_tables_give_wrong_outputs(pixels):
    qat = tflw.quantize_model(small_cnn(), calibration_data=pixels, weight_bits=3)
    model_bytes = to_tflite(qat)
    model = convert_bytearray_to_object(bytearray(model_bytes))
    graph = model.subgraphs[0]
    axes, indices = {}, {}
    for op in graph.operators:
        tensor = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
        if tensor is not None and model.buffers[tensor.buffer].data is not None and tensor.type == 9:
            plan, name = _plan(model, tensor), tensor.name.decode().split("/")[1]
            axes[name], indices[name] = None if plan is None else plan.axis, op.inputs[1]
    wide = next(name for name in axes if name.startswith("wide"))
    assert axes[wide] == 0  # CONV_2D filters (out, h, w, in)
    # the measured pitfall: one table for a per-channel tensor decodes to other values
    per_tensor = bytes(compress(model_bytes, [spec.Tensor(0, indices[wide], [
        spec.LookUpTableCompression(index_bitwidth=7, mode=spec.PerTensor())])]))
    right = tflw.verify(lut_compress(model_bytes).model_bytes, pixels).outputs[0]
    wrong = tflw.verify(per_tensor, pixels).outputs[0]
    reference = tflw.verify(model_bytes, pixels).outputs[0]
    assert np.array_equal(right, reference) and not np.array_equal(wrong, reference)


@pytest.mark.parametrize("method", ["lsq", "apot+ewgs", "kmeans"])
def test_a_low_bit_model_round_trips_through_a_keras_file(method, pixels, tmp_path):
    qat = tflw.quantize_model(small_cnn(), calibration_data=pixels, weight_bits=4, method=method)
    qat.save(tmp_path / "lowbit.keras")
    loaded = keras.saving.load_model(tmp_path / "lowbit.keras")
    np.testing.assert_array_equal(loaded.predict(pixels, verbose=0), qat.predict(pixels, verbose=0))


def test_analysis_shows_the_bits_and_the_lut_flash(pixels):
    qat = tflw.quantize_model(small_cnn(), calibration_data=pixels, weight_bits=3)
    analysis = tflw.analyze(qat)
    assert sorted(set(analysis.lut_bits.values())) and max(analysis.lut_bits.values()) <= 3
    assert analysis.lut_flatbuffer_bytes < analysis.flatbuffer_bytes
    assert analysis.lut_arena_bytes >= analysis.arena_bytes  # DECODE fills arena buffers
    text = str(analysis)
    assert "LUT-compressed" in text and f"{analysis.lut_flatbuffer_bytes:,} B" in text
    saved = analysis.flatbuffer_bytes - analysis.lut_flatbuffer_bytes
    assert f"saving {saved:,} B does not pay" in text  # a small model: DECODE costs more


def test_binary_layers_hold_two_int8_values_and_ship_as_a_one_bit_lut(pixels, tmp_path):
    qat = tflw.quantize_model(small_cnn(), calibration_data=pixels, weight_bits=1)
    levels = int8_levels(to_tflite(qat))
    assert max(count for name, count in levels.items()
               if not name.startswith(("first", "last"))) == 2
    result = tflw.export(qat, tmp_path / "out", sample_inputs=pixels)
    assert {t["bits"] for t in result.report["lut"]["tensors"]} == {1}
    # by default a compressed model is written only where it pays for DECODE's code
    lut = result.report["lut"]
    assert lut["written"] == lut["pays"] == (lut["flash_saved_bytes"] > lut["decode_code_bytes"])
    assert (result.compressed_path is not None) == lut["written"]
    note = "A smaller model is beside this one" if lut["written"] else "no compressed model is written"
    assert note in result.sketch_path.read_text()
    assert result.verification.max_lsb_difference <= 1.001
