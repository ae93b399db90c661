"""Shift convolution: a zero-MAC, zero-weight move that TFLite-Micro runs as an exact copy."""

import keras
import numpy as np

import tflw
from tflw.analysis import keras_costs
from tflw.export.tflm import run_tflm
from tflw.models import Shift, shift_block
from tflw.models.shift import DIRECTIONS


def shifted(x: np.ndarray) -> np.ndarray:
    """Each of nine channel groups moved one pixel by its direction, zeros shifted in."""
    out = np.zeros_like(x)
    groups = np.array_split(np.arange(x.shape[-1]), len(DIRECTIONS))
    height, width = x.shape[1:3]
    for (dy, dx), channels in zip(DIRECTIONS, groups):
        for i in range(height):
            for j in range(width):
                if 0 <= i - dy < height and 0 <= j - dx < width:
                    out[:, i, j, channels] = x[:, i - dy, j - dx, channels]
    return out


def test_each_channel_group_moves_one_pixel_in_its_direction():
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 11)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(Shift()(x)), shifted(x))


def test_the_shift_is_an_exact_copy_of_the_int8_codes_in_tflite_micro(tmp_path):
    inputs = keras.Input((8, 8, 18))
    model = keras.Model(inputs, Shift()(inputs))
    x = np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 18)).astype("float32")
    qat = tflw.quantize_model(model, calibration_data=x)
    result = tflw.export(qat, tmp_path / "shift", sample_inputs=x)
    assert {op.name for op in result.info.ops} <= {"PAD", "STRIDED_SLICE", "CONCATENATION"}
    source, target = result.info.inputs[0], result.info.outputs[0]
    assert (source.scale, source.zero_point) == (target.scale, target.zero_point)
    codes = source.quantize(x)
    out = run_tflm(result.tflite_path.read_bytes(), [codes], 1).outputs[0]
    # zeros shifted in are the zero point's code: the real value 0
    expected = shifted(codes.astype(np.int32) - source.zero_point) + source.zero_point
    np.testing.assert_array_equal(out, expected)


def test_a_shift_block_costs_only_its_1x1_convolution():
    inputs = keras.Input((8, 8, 16))
    model = keras.Model(inputs, shift_block(inputs, 32))
    assert keras_costs(model) == (16 * 32 + 32, 8 * 8 * 32 * 16)
