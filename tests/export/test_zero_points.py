"""One zero point per per-channel tensor in the LUT-compressed model: smaller, same outputs."""

import keras
import pytest
import tensorflow as tf

import tflw
from tflw.export.flatbuffer_edit import edited
from tflw.export.zero_points import single_zero_points
from tflite_micro.python.tflite_micro.runtime import convert_bytearray_to_object


def zero_point_counts(model_bytes: bytes) -> list:
    """(zero points, scales) of every per-channel tensor."""
    graph = convert_bytearray_to_object(bytearray(model_bytes)).subgraphs[0]
    return [(len(t.quantization.zeroPoint), len(t.quantization.scale)) for t in graph.tensors
            if t.quantization is not None and t.quantization.scale is not None
            and len(t.quantization.scale) > 1]


@pytest.fixture(scope="module")
def exported(pixels, tmp_path_factory):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)))
    qat = tflw.quantize_model(model, calibration_data=pixels, weight_bits=4)
    return tflw.export(qat, tmp_path_factory.mktemp("zp") / "out", sample_inputs=pixels,
                       compress="always")


def test_the_compressed_model_keeps_one_zero_point_per_tensor_and_its_outputs(exported):
    compressed = exported.compressed_path.read_bytes()
    counts = zero_point_counts(compressed)
    assert counts and all(zeros == 1 for zeros, _ in counts)
    assert exported.report["lut"]["identical_outputs"]  # checked in TFLite-Micro by export
    # applied once: nothing left to cut
    assert single_zero_points(compressed) == compressed


def test_the_int8_model_keeps_its_zero_points_and_runs_in_tensorflow_lite(exported):
    model_bytes = exported.tflite_path.read_bytes()
    counts = zero_point_counts(model_bytes)
    assert counts and all(zeros == scales for zeros, scales in counts)
    tf.lite.Interpreter(model_content=model_bytes).allocate_tensors()
    # what the cut would save here: 8 bytes per zero point dropped, against the same
    # model rebuilt and aligned without it
    rebuilt = edited(model_bytes, lambda model: True)
    dropped = sum(scales - 1 for _, scales in counts)
    assert len(rebuilt) - len(single_zero_points(model_bytes)) == 8 * dropped
    with pytest.raises(ValueError, match="zero_point values"):
        tf.lite.Interpreter(model_content=single_zero_points(model_bytes)).allocate_tensors()
